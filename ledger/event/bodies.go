package event

import "time"

// Stable type strings. Never rename one; add a new version instead.
const (
	TypeKeyCreated            = "KeyCreated.v1"
	TypeKeyEnabled            = "KeyEnabled.v1"
	TypeKeyDisabled           = "KeyDisabled.v1"
	TypeKeyDescriptionUpdated = "KeyDescriptionUpdated.v1"
	TypeKeyDeletionScheduled  = "KeyDeletionScheduled.v1"
	TypeKeyDeletionCanceled   = "KeyDeletionCanceled.v1"
	TypeKeyDeleted            = "KeyDeleted.v1"
	TypeAliasCreated          = "AliasCreated.v1"
	TypeAliasUpdated          = "AliasUpdated.v1"
	TypeAliasDeleted          = "AliasDeleted.v1"
	TypeKeyTagged             = "KeyTagged.v1"
	TypeKeyUntagged           = "KeyUntagged.v1"
	TypeAPICall               = "APICall.v1"
	TypeKeyRotationEnabled    = "KeyRotationEnabled.v1"
	TypeKeyRotationDisabled   = "KeyRotationDisabled.v1"
	TypeKeyRotated            = "KeyRotated.v1"
	TypeImportParameters      = "ImportParametersIssued.v1"
	TypeKeyMaterialImported   = "KeyMaterialImported.v1"
	TypeKeyMaterialDeleted    = "KeyMaterialDeleted.v1"
	TypeKeyPolicyPut          = "KeyPolicyPut.v1"
	TypeGrantCreated          = "GrantCreated.v1"
	TypeGrantRetired          = "GrantRetired.v1"
	TypePrincipalsConfigured  = "PrincipalsConfigured.v1"
	TypeWriterRegistered      = "WriterRegistered.v1"
	TypeWriterRevoked         = "WriterRevoked.v1"
	TypeFence                 = "Fence.v1"
)

func newBody(typ string) Body {
	switch typ {
	case TypeKeyCreated:
		return &KeyCreated{}
	case TypeKeyEnabled:
		return &KeyEnabled{}
	case TypeKeyDisabled:
		return &KeyDisabled{}
	case TypeKeyDescriptionUpdated:
		return &KeyDescriptionUpdated{}
	case TypeKeyDeletionScheduled:
		return &KeyDeletionScheduled{}
	case TypeKeyDeletionCanceled:
		return &KeyDeletionCanceled{}
	case TypeKeyDeleted:
		return &KeyDeleted{}
	case TypeAliasCreated:
		return &AliasCreated{}
	case TypeAliasUpdated:
		return &AliasUpdated{}
	case TypeAliasDeleted:
		return &AliasDeleted{}
	case TypeKeyTagged:
		return &KeyTagged{}
	case TypeKeyUntagged:
		return &KeyUntagged{}
	case TypeAPICall:
		return &APICall{}
	case TypeKeyRotationEnabled:
		return &KeyRotationEnabled{}
	case TypeKeyRotationDisabled:
		return &KeyRotationDisabled{}
	case TypeKeyRotated:
		return &KeyRotated{}
	case TypeImportParameters:
		return &ImportParametersIssued{}
	case TypeKeyMaterialImported:
		return &KeyMaterialImported{}
	case TypeKeyMaterialDeleted:
		return &KeyMaterialDeleted{}
	case TypeKeyPolicyPut:
		return &KeyPolicyPut{}
	case TypeGrantCreated:
		return &GrantCreated{}
	case TypeGrantRetired:
		return &GrantRetired{}
	case TypePrincipalsConfigured:
		return &PrincipalsConfigured{}
	case TypeWriterRegistered:
		return &WriterRegistered{}
	case TypeWriterRevoked:
		return &WriterRevoked{}
	case TypeFence:
		return &Fence{}
	case TypeRootUnsealed:
		return &RootUnsealed{}
	case TypeRootUnsealFailed:
		return &RootUnsealFailed{}
	case TypeRootSealed:
		return &RootSealed{}
	case TypeRootRotationStarted:
		return &RootRotationStarted{}
	case TypeMaterialRewrapped:
		return &MaterialRewrapped{}
	case TypeRootVersionRetired:
		return &RootVersionRetired{}
	case TypeSegmentRemoved:
		return &SegmentRemoved{}
	case TypeSchedulerLeaseTaken:
		return &SchedulerLeaseTaken{}
	}
	if b := newMultiRegionBody(typ); b != nil {
		return b
	}
	return &Unknown{}
}

// MaterialRef commits to one piece of wrapped key material held in the
// deletable material store: its id and the SHA-256 of its wrapped bytes.
type MaterialRef struct {
	ID          string `json:"id"`
	WrappedHash string `json:"wrappedHash"`
}

func (m MaterialRef) encode(w *writer, name string) {
	w.object(name, func(w *writer) {
		w.str("id", m.ID)
		w.str("wrappedHash", m.WrappedHash)
	})
}

// KeyCreated records a new KMS key and its first key material (none for
// Origin EXTERNAL, whose material is imported later). PublicKey is the
// base64 DER SubjectPublicKeyInfo of an asymmetric key (public by nature).
type KeyCreated struct {
	Description string            `json:"description,omitempty"`
	KeySpec     string            `json:"keySpec"`
	KeyUsage    string            `json:"keyUsage"`
	Origin      string            `json:"origin"`
	MultiRegion bool              `json:"multiRegion,omitempty"`
	Policy      string            `json:"policy,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	Material    MaterialRef       `json:"material"`
	PublicKey   string            `json:"publicKey,omitempty"`
	// Seed is set when a seed file made the key (serve --seed, keyledger
	// seed), with a fixed key id.
	Seed *SeedRef `json:"seed,omitempty"`
}

// SeedRef says that a seed file made a change: the file's SHA-256, the
// entry that asked for it, and whether the key material came from the file
// (KnownMaterial: whoever holds the file holds the key, as test fixtures
// want and production never should). The material itself is wrapped under
// the root key like any other; the ledger holds only its commitment.
type SeedRef struct {
	FileHash      string `json:"fileHash"`
	Entry         string `json:"entry"`
	KnownMaterial bool   `json:"knownMaterial,omitempty"`
}

func (r *SeedRef) encode(w *writer) {
	if r == nil {
		return
	}
	w.object("seed", func(w *writer) {
		w.str("fileHash", r.FileHash)
		w.str("entry", r.Entry)
		w.bool("knownMaterial", r.KnownMaterial)
	})
}

func (*KeyCreated) Type() string { return TypeKeyCreated }
func (b *KeyCreated) encode(w *writer) {
	w.str("description", b.Description)
	w.str("keySpec", b.KeySpec)
	w.str("keyUsage", b.KeyUsage)
	w.str("origin", b.Origin)
	w.bool("multiRegion", b.MultiRegion)
	w.str("policy", b.Policy)
	w.strMap("tags", b.Tags)
	b.Material.encode(w, "material")
	w.str("publicKey", b.PublicKey)
	b.Seed.encode(w)
}

// KeyEnabled records EnableKey.
type KeyEnabled struct{}

func (*KeyEnabled) Type() string   { return TypeKeyEnabled }
func (*KeyEnabled) encode(*writer) {}

// KeyDisabled records DisableKey.
type KeyDisabled struct{}

func (*KeyDisabled) Type() string   { return TypeKeyDisabled }
func (*KeyDisabled) encode(*writer) {}

// KeyDescriptionUpdated records UpdateKeyDescription.
type KeyDescriptionUpdated struct {
	Description string `json:"description,omitempty"`
}

func (*KeyDescriptionUpdated) Type() string { return TypeKeyDescriptionUpdated }
func (b *KeyDescriptionUpdated) encode(w *writer) {
	w.str("description", b.Description)
}

// KeyDeletionScheduled records ScheduleKeyDeletion.
type KeyDeletionScheduled struct {
	DeletionDate      time.Time `json:"deletionDate"`
	PendingWindowDays int       `json:"pendingWindowDays"`
}

func (*KeyDeletionScheduled) Type() string { return TypeKeyDeletionScheduled }
func (b *KeyDeletionScheduled) encode(w *writer) {
	w.time("deletionDate", b.DeletionDate)
	w.int("pendingWindowDays", int64(b.PendingWindowDays))
}

// KeyDeletionCanceled records CancelKeyDeletion; the key becomes Disabled.
type KeyDeletionCanceled struct{}

func (*KeyDeletionCanceled) Type() string   { return TypeKeyDeletionCanceled }
func (*KeyDeletionCanceled) encode(*writer) {}

// KeyDeleted records the scheduler deleting a key whose waiting period
// ended, and which key materials it destroys.
type KeyDeleted struct {
	DestroyedMaterials []string `json:"destroyedMaterials,omitempty"`
}

func (*KeyDeleted) Type() string { return TypeKeyDeleted }
func (b *KeyDeleted) encode(w *writer) {
	w.strList("destroyedMaterials", b.DestroyedMaterials)
}

// AliasCreated records CreateAlias; the envelope's KeyID is the target.
type AliasCreated struct {
	AliasName string `json:"aliasName"`
}

func (*AliasCreated) Type() string { return TypeAliasCreated }
func (b *AliasCreated) encode(w *writer) {
	w.str("aliasName", b.AliasName)
}

// AliasUpdated records UpdateAlias; the envelope's KeyID is the new target.
type AliasUpdated struct {
	AliasName     string `json:"aliasName"`
	PreviousKeyID string `json:"previousKeyId"`
}

func (*AliasUpdated) Type() string { return TypeAliasUpdated }
func (b *AliasUpdated) encode(w *writer) {
	w.str("aliasName", b.AliasName)
	w.str("previousKeyId", b.PreviousKeyID)
}

// AliasDeleted records DeleteAlias; the envelope's KeyID is the old target.
type AliasDeleted struct {
	AliasName string `json:"aliasName"`
}

func (*AliasDeleted) Type() string { return TypeAliasDeleted }
func (b *AliasDeleted) encode(w *writer) {
	w.str("aliasName", b.AliasName)
}

// KeyTagged records TagResource (new or replaced tags).
type KeyTagged struct {
	Tags map[string]string `json:"tags"`
}

func (*KeyTagged) Type() string { return TypeKeyTagged }
func (b *KeyTagged) encode(w *writer) {
	w.strMap("tags", b.Tags)
}

// KeyUntagged records UntagResource.
type KeyUntagged struct {
	TagKeys []string `json:"tagKeys"`
}

func (*KeyUntagged) Type() string { return TypeKeyUntagged }
func (b *KeyUntagged) encode(w *writer) {
	w.strList("tagKeys", b.TagKeys)
}

// APICall records a request that changes no key state: a cryptographic
// operation, a read, or any refused request. It holds the non-secret request
// parameters AWS logs (never plaintext, ciphertext or data keys).
type APICall struct {
	MaterialID                   string            `json:"materialId,omitempty"`
	EncryptionAlgorithm          string            `json:"encryptionAlgorithm,omitempty"`
	EncryptionContext            map[string]string `json:"encryptionContext,omitempty"`
	NumberOfBytes                int               `json:"numberOfBytes,omitempty"`
	DataKeySpec                  string            `json:"dataKeySpec,omitempty"`
	DestinationKeyID             string            `json:"destinationKeyId,omitempty"`
	DestinationMaterialID        string            `json:"destinationMaterialId,omitempty"`
	DestinationEncryptionContext map[string]string `json:"destinationEncryptionContext,omitempty"`
	Params                       map[string]string `json:"params,omitempty"`
}

func (*APICall) Type() string { return TypeAPICall }
func (b *APICall) encode(w *writer) {
	w.str("materialId", b.MaterialID)
	w.str("encryptionAlgorithm", b.EncryptionAlgorithm)
	w.strMap("encryptionContext", b.EncryptionContext)
	w.int("numberOfBytes", int64(b.NumberOfBytes))
	w.str("dataKeySpec", b.DataKeySpec)
	w.str("destinationKeyId", b.DestinationKeyID)
	w.str("destinationMaterialId", b.DestinationMaterialID)
	w.strMap("destinationEncryptionContext", b.DestinationEncryptionContext)
	w.strMap("params", b.Params)
}

// KeyRotationEnabled records EnableKeyRotation; the first automatic
// rotation falls due RotationPeriodDays after the event's time.
type KeyRotationEnabled struct {
	RotationPeriodDays int `json:"rotationPeriodDays"`
}

func (*KeyRotationEnabled) Type() string { return TypeKeyRotationEnabled }
func (b *KeyRotationEnabled) encode(w *writer) {
	w.int("rotationPeriodDays", int64(b.RotationPeriodDays))
}

// KeyRotationDisabled records DisableKeyRotation.
type KeyRotationDisabled struct{}

func (*KeyRotationDisabled) Type() string   { return TypeKeyRotationDisabled }
func (*KeyRotationDisabled) encode(*writer) {}

// KeyRotated records new key material becoming current: RotateKeyOnDemand,
// or the scheduler's RotateKey service event. RotationType is AUTOMATIC or
// ON_DEMAND.
type KeyRotated struct {
	Material     MaterialRef `json:"material"`
	RotationType string      `json:"rotationType"`
}

func (*KeyRotated) Type() string { return TypeKeyRotated }
func (b *KeyRotated) encode(w *writer) {
	b.Material.encode(w, "material")
	w.str("rotationType", b.RotationType)
}

// ImportParametersIssued records GetParametersForImport: an RSA wrapping
// key (its private half wrapped in the material store) and the import
// token that names it (TokenID is the token's SHA-256; the token itself is
// a bearer credential and never recorded), valid until ValidTo.
type ImportParametersIssued struct {
	TokenID           string      `json:"tokenId"`
	WrappingAlgorithm string      `json:"wrappingAlgorithm"`
	WrappingKeySpec   string      `json:"wrappingKeySpec"`
	ValidTo           time.Time   `json:"validTo"`
	WrappingKey       MaterialRef `json:"wrappingKey"`
}

func (*ImportParametersIssued) Type() string { return TypeImportParameters }
func (b *ImportParametersIssued) encode(w *writer) {
	w.str("tokenId", b.TokenID)
	w.str("wrappingAlgorithm", b.WrappingAlgorithm)
	w.str("wrappingKeySpec", b.WrappingKeySpec)
	w.time("validTo", b.ValidTo)
	b.WrappingKey.encode(w, "wrappingKey")
}

// KeyMaterialImported records ImportKeyMaterial: the imported material,
// now wrapped under the root key, and when it expires.
type KeyMaterialImported struct {
	Material        MaterialRef `json:"material"`
	TokenID         string      `json:"tokenId"`
	ExpirationModel string      `json:"expirationModel"`
	ValidTo         time.Time   `json:"validTo"`
	Description     string      `json:"description,omitempty"`
	PublicKey       string      `json:"publicKey,omitempty"`
	// Seed is set when the material came from a seed file (no import token).
	Seed *SeedRef `json:"seed,omitempty"`
}

func (*KeyMaterialImported) Type() string { return TypeKeyMaterialImported }
func (b *KeyMaterialImported) encode(w *writer) {
	b.Material.encode(w, "material")
	w.str("tokenId", b.TokenID)
	w.str("expirationModel", b.ExpirationModel)
	w.time("validTo", b.ValidTo)
	w.str("description", b.Description)
	w.str("publicKey", b.PublicKey)
	b.Seed.encode(w)
}

// KeyMaterialDeleted records imported material destroyed, by
// DeleteImportedKeyMaterial or (a service event, DeleteExpiredKeyMaterial)
// because it expired. The key is PendingImport afterwards.
type KeyMaterialDeleted struct {
	MaterialID string `json:"materialId"`
}

func (*KeyMaterialDeleted) Type() string { return TypeKeyMaterialDeleted }
func (b *KeyMaterialDeleted) encode(w *writer) {
	w.str("materialId", b.MaterialID)
}

// KeyPolicyPut records PutKeyPolicy.
type KeyPolicyPut struct {
	Policy                         string `json:"policy"`
	BypassPolicyLockoutSafetyCheck bool   `json:"bypassPolicyLockoutSafetyCheck,omitempty"`
}

func (*KeyPolicyPut) Type() string { return TypeKeyPolicyPut }
func (b *KeyPolicyPut) encode(w *writer) {
	w.str("policy", b.Policy)
	w.bool("bypassPolicyLockoutSafetyCheck", b.BypassPolicyLockoutSafetyCheck)
}

// GrantCreated records CreateGrant. The grant token itself is a bearer
// credential and is never recorded; TokenHash is its SHA-256.
type GrantCreated struct {
	GrantID                 string            `json:"grantId"`
	Name                    string            `json:"name,omitempty"`
	GranteePrincipal        string            `json:"granteePrincipal"`
	RetiringPrincipal       string            `json:"retiringPrincipal,omitempty"`
	Operations              []string          `json:"operations"`
	EncryptionContextEquals map[string]string `json:"encryptionContextEquals,omitempty"`
	EncryptionContextSubset map[string]string `json:"encryptionContextSubset,omitempty"`
	TokenHash               string            `json:"tokenHash"`
}

func (*GrantCreated) Type() string { return TypeGrantCreated }
func (b *GrantCreated) encode(w *writer) {
	w.str("grantId", b.GrantID)
	w.str("name", b.Name)
	w.str("granteePrincipal", b.GranteePrincipal)
	w.str("retiringPrincipal", b.RetiringPrincipal)
	w.strList("operations", b.Operations)
	w.strMap("encryptionContextEquals", b.EncryptionContextEquals)
	w.strMap("encryptionContextSubset", b.EncryptionContextSubset)
	w.str("tokenHash", b.TokenHash)
}

// GrantRetired records RetireGrant or RevokeGrant.
type GrantRetired struct {
	GrantID string `json:"grantId"`
}

func (*GrantRetired) Type() string       { return TypeGrantRetired }
func (b *GrantRetired) encode(w *writer) { w.str("grantId", b.GrantID) }

// PrincipalsConfigured records the principals configuration in force from
// now on: every principal, its access key ids and identity policies (never
// a secret), and the SHA-256 of that summary.
type PrincipalsConfigured struct {
	Summary string `json:"summary"`
	Hash    string `json:"hash"`
}

func (*PrincipalsConfigured) Type() string { return TypePrincipalsConfigured }
func (b *PrincipalsConfigured) encode(w *writer) {
	w.str("summary", b.Summary)
	w.str("hash", b.Hash)
}

// WriterRegistered records a writer key allowed to sign ledger messages
// from the next message on: its ID and Ed25519 public key (base64), and the
// writer that registered it. The first writer of a ledger registers itself
// (RegisteredBy is its own ID) in the ledger's first message; later writers
// are registered by a message signed by an already registered writer.
type WriterRegistered struct {
	WriterID     string `json:"writerId"`
	PublicKey    string `json:"publicKey"`
	RegisteredBy string `json:"registeredBy"`
}

func (*WriterRegistered) Type() string { return TypeWriterRegistered }
func (b *WriterRegistered) encode(w *writer) {
	w.str("writerId", b.WriterID)
	w.str("publicKey", b.PublicKey)
	w.str("registeredBy", b.RegisteredBy)
}

// WriterRevoked records that a registered writer's key may sign nothing
// from the next message on (package chain): its messages before stay
// valid history, later ones are quarantined, and a WriterRegistered naming
// it again registers nothing (a revoked key never comes back). RevokedBy
// is the writer that recorded the revocation (the message's signer);
// Reason is the operator's optional text (at most MaxRevokeReason bytes
// of printable UTF-8, no secret).
type WriterRevoked struct {
	WriterID  string `json:"writerId"`
	RevokedBy string `json:"revokedBy"`
	Reason    string `json:"reason,omitempty"`
}

// MaxRevokeReason bounds WriterRevoked.Reason, in bytes.
const MaxRevokeReason = 256

func (*WriterRevoked) Type() string { return TypeWriterRevoked }
func (b *WriterRevoked) encode(w *writer) {
	w.str("writerId", b.WriterID)
	w.str("revokedBy", b.RevokedBy)
	w.str("reason", b.Reason)
}

// Fence is the part of a key-state change that lands on a control chain
// other than the change's own, when the change depends on several
// (package ledger, AppendChange): it is stored in the same atomic batch as
// the change, so a concurrent change on its chain cannot slip between the
// validation and the commit. It changes no state. Change is the hex hash
// of the change's event, on chain Chain.
type Fence struct {
	Chain  string `json:"chain"`
	Change string `json:"change"`
}

func (*Fence) Type() string { return TypeFence }
func (b *Fence) encode(w *writer) {
	w.str("chain", b.Chain)
	w.str("change", b.Change)
}

// Unknown is the body of an event type this build does not know. Its raw
// JSON is kept so nothing is lost; it cannot be re-encoded.
type Unknown struct {
	TypeName string
	Raw      []byte
}

func (u *Unknown) Type() string { return u.TypeName }
func (u *Unknown) encode(w *writer) {
	panic("event: cannot encode an event of unknown type " + u.TypeName)
}

// FenceFor is the Fence event that stands for change (whose hash is
// changeHash) on control chain name, at index after prev: it names the
// change's operation, account, region, key and actor, so the chain it
// lands on reads on its own.
func FenceFor(change *Event, changeHash Hash, name string, index uint64, prev Hash) *Event {
	return &Event{Index: index, Prev: prev, Chain: name, Time: change.Time, Operation: change.Operation,
		Account: change.Account, Region: change.Region, KeyID: change.KeyID, Actor: change.Actor,
		Body: &Fence{Chain: change.Chain, Change: changeHash.String()}}
}
