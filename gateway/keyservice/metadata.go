package keyservice

import (
	"github.com/keyledger/keyledger/crypto/keyspec"
	"github.com/keyledger/keyledger/projections/keystate"
)

// metadata renders a key as AWS's KeyMetadata.
func (s *Service) metadata(k keystate.Key) *KeyMetadata {
	md := &KeyMetadata{
		AWSAccountId: k.Account, KeyId: k.ID, Arn: s.arnOf(k), CreationDate: EpochTime(k.Created),
		Enabled: k.State == keystate.Enabled, Description: k.Description, KeyUsage: string(k.Usage),
		KeyState: string(k.State), Origin: k.Origin, KeyManager: "CUSTOMER",
		KeySpec: string(k.Spec), MultiRegion: k.MultiRegion,
		EncryptionAlgorithms:   strs(k.Spec.EncryptionAlgorithms(k.Usage)),
		SigningAlgorithms:      strs(k.Spec.SigningAlgorithms(k.Usage)),
		MacAlgorithms:          strs(k.Spec.MACAlgorithms()),
		KeyAgreementAlgorithms: k.Spec.KeyAgreementAlgorithms(k.Usage),
	}
	if k.Spec != keyspec.ECCEdwards25519 && k.Spec != keyspec.MLDSA44 && k.Spec != keyspec.MLDSA65 && k.Spec != keyspec.MLDSA87 {
		md.CustomerMasterKeySpec = string(k.Spec) // the deprecated field lacks the newer specs
	}
	if k.HasMaterial() {
		m := k.CurrentMaterial()
		md.CurrentKeyMaterialId = m.ID
		if m.Imported {
			md.ExpirationModel = m.ExpirationModel
			md.ValidTo = epoch(m.ValidTo)
		}
	}
	if k.State == keystate.PendingDeletion || k.State == keystate.PendingReplicaDeletion {
		md.DeletionDate = epoch(k.DeletionDate) // none while replicas remain
		days := k.PendingWindowDays
		md.PendingDeletionWindowInDays = &days
	}
	md.MultiRegionConfiguration = s.multiRegionConfiguration(k)
	if k.Updating {
		md.KeyState = "Updating"
	}
	return md
}

func strs[T ~string](in []T) []string {
	out := make([]string, len(in))
	for i, v := range in {
		out[i] = string(v)
	}
	return out
}
