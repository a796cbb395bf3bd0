package keyservice

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"time"

	"github.com/keyledger/keyledger/crypto/asymmetric"
	"github.com/keyledger/keyledger/crypto/keyspec"
	"github.com/keyledger/keyledger/crypto/secret"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/projections/keystate"
)

const importTokenLifetime = 24 * time.Hour

// GetParametersForImportInput and GetParametersForImportOutput are the AWS
// GetParametersForImport members.
type (
	GetParametersForImportInput struct {
		KeyId             string `json:"KeyId"`
		WrappingAlgorithm string `json:"WrappingAlgorithm"`
		WrappingKeySpec   string `json:"WrappingKeySpec"`
	}

	GetParametersForImportOutput struct {
		KeyId             string     `json:"KeyId"`
		ImportToken       []byte     `json:"ImportToken"`
		PublicKey         []byte     `json:"PublicKey"`
		ParametersValidTo *EpochTime `json:"ParametersValidTo"`
	}
)

// importable checks that key material may be imported into k.
func (s *Service) importable(k keystate.Key) error {
	if k.Origin != "EXTERNAL" {
		return errorf(CodeUnsupportedOperation, "%s was not created with Origin EXTERNAL; its key material cannot be imported.", s.arnOf(k))
	}
	return s.notPendingDeletion(k)
}

// GetParametersForImport issues an RSA wrapping key and an import token,
// valid for 24 hours, for importing key material into an EXTERNAL key.
func (s *Service) GetParametersForImport(ctx context.Context, c Caller, in *GetParametersForImportInput) (*GetParametersForImportOutput, error) {
	ev := s.newEvent(c, "GetParametersForImport")
	ev.Body = &event.APICall{Params: map[string]string{"wrappingAlgorithm": in.WrappingAlgorithm, "wrappingKeySpec": in.WrappingKeySpec}}
	check := func() (keystate.Key, error) {
		switch in.WrappingAlgorithm {
		case asymmetric.WrapRSAESOAEPSHA1, asymmetric.WrapRSAESOAEPSHA256, asymmetric.WrapRSAAESKeyWrapSHA1, asymmetric.WrapRSAAESKeyWrapSHA256:
		case "RSAES_PKCS1_V1_5":
			return keystate.Key{}, errorf(CodeUnsupportedOperation, "RSAES_PKCS1_V1_5 wrapping is deprecated by AWS and not offered.")
		case "SM2PKE":
			return keystate.Key{}, errorf(CodeUnsupportedOperation, "SM2PKE is only available in China Regions.")
		case "":
			return keystate.Key{}, missing("wrappingAlgorithm")
		default:
			return keystate.Key{}, notInEnum("wrappingAlgorithm", in.WrappingAlgorithm, "RSAES_PKCS1_V1_5", "RSAES_OAEP_SHA_1",
				"RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256", "SM2PKE")
		}
		switch keyspec.Spec(in.WrappingKeySpec) {
		case keyspec.RSA2048, keyspec.RSA3072, keyspec.RSA4096:
		case keyspec.SM2:
			return keystate.Key{}, errorf(CodeUnsupportedOperation, "SM2 wrapping keys are only available in China Regions.")
		case "":
			return keystate.Key{}, missing("wrappingKeySpec")
		default:
			return keystate.Key{}, notInEnum("wrappingKeySpec", in.WrappingKeySpec, "RSA_2048", "RSA_3072", "RSA_4096", "SM2")
		}
		k, err := s.use(c, in.KeyId, false, request{action: "kms:GetParametersForImport",
			extra: map[string]string{"kms:wrappingalgorithm": in.WrappingAlgorithm, "kms:wrappingkeyspec": in.WrappingKeySpec}})
		if err != nil {
			return k, err
		}
		return k, s.importable(k)
	}
	if k, err := check(); err != nil {
		ev.KeyID = k.ID
		return nil, s.refuse(ctx, ev, err)
	}
	// The wrapping key pair is made (RSA: up to seconds) and stored first.
	wk, pub, err := newMaterial(keyspec.Spec(in.WrappingKeySpec))
	var ref event.MaterialRef
	if err == nil {
		ref, err = s.storeMaterial(ctx, wk)
	}
	wk.Clear()
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	token := secret.Random(32)
	out, err := changing(ctx, s, func(ctx context.Context) (*GetParametersForImportOutput, error) {
		s.touchRef(ctx, c, in.KeyId)
		ev := *ev // each attempt records its own
		k, err := check()
		ev.KeyID = k.ID
		if err != nil {
			rerr := s.refuse(ctx, &ev, err)
			if !errors.Is(rerr, errLostRace) {
				_ = s.materials.Destroy(ctx, ref.ID) // never committed to
			}
			return nil, rerr
		}
		// The token is a bearer credential: the ledger records only its hash.
		tokenID := importTokenID(token.Expose())
		validTo := s.clock.Now().Add(importTokenLifetime)
		ev.Body = &event.ImportParametersIssued{TokenID: tokenID, WrappingAlgorithm: in.WrappingAlgorithm,
			WrappingKeySpec: in.WrappingKeySpec, ValidTo: validTo, WrappingKey: ref}
		if err := s.record(ctx, &ev); err != nil {
			return nil, err
		}
		pubDER, _ := base64.StdEncoding.DecodeString(pub)
		return &GetParametersForImportOutput{KeyId: s.arnOf(k), ImportToken: token.Expose(), PublicKey: pubDER,
			ParametersValidTo: epoch(validTo)}, nil
	})
	if errors.Is(err, errBusy) {
		_ = s.materials.Destroy(ctx, ref.ID) // never committed to
	}
	return out, err
}

// ImportKeyMaterialInput and ImportKeyMaterialOutput are the AWS
// ImportKeyMaterial members.
type (
	ImportKeyMaterialInput struct {
		KeyId                  string     `json:"KeyId"`
		ImportToken            []byte     `json:"ImportToken"`
		EncryptedKeyMaterial   []byte     `json:"EncryptedKeyMaterial"`
		ValidTo                *EpochTime `json:"ValidTo"`
		ExpirationModel        string     `json:"ExpirationModel"`
		ImportType             string     `json:"ImportType"`
		KeyMaterialDescription string     `json:"KeyMaterialDescription"`
		KeyMaterialId          string     `json:"KeyMaterialId"`
	}

	ImportKeyMaterialOutput struct {
		KeyId         string `json:"KeyId"`
		KeyMaterialId string `json:"KeyMaterialId"`
	}
)

// ImportKeyMaterial unwraps key material sent under an import token's
// wrapping key, checks it fits the key, and stores it wrapped under the root
// key. Re-importing must bring the same material.
func (s *Service) ImportKeyMaterial(ctx context.Context, c Caller, in *ImportKeyMaterialInput) (*ImportKeyMaterialOutput, error) {
	return changing(ctx, s, func(ctx context.Context) (*ImportKeyMaterialOutput, error) { return s.importKeyMaterial(ctx, c, in) })
}

// importKeyMaterial is one attempt at ImportKeyMaterial; storing the
// material again after a lost race is idempotent (its id derives from
// the key and the material).
func (s *Service) importKeyMaterial(ctx context.Context, c Caller, in *ImportKeyMaterialInput) (*ImportKeyMaterialOutput, error) {
	s.touchRef(ctx, c, in.KeyId)
	ev := s.newEvent(c, "ImportKeyMaterial")
	ev.Body = &event.APICall{Params: map[string]string{"expirationModel": in.ExpirationModel, "importType": in.ImportType}}
	body, k, mat, err := s.importMaterial(ctx, c, ev, in)
	defer mat.Clear()
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	newID := body.Material.ID == ""
	if newID {
		if body.Material, err = s.storeMaterialAs(ctx, importedMaterialID(k.ID, mat), mat); err != nil {
			return nil, s.refuse(ctx, ev, err)
		}
	}
	ev.Body = body
	if err := s.record(ctx, ev); err != nil {
		return nil, err
	}
	if newID {
		s.remember(body.Material.ID, secret.New(mat.Expose()))
	}
	return &ImportKeyMaterialOutput{KeyId: s.arnOf(k), KeyMaterialId: body.Material.ID}, nil
}

// importMaterial validates an import and returns the event body (with the
// existing material's ref on a re-import, else no ref yet) and the material.
func (s *Service) importMaterial(ctx context.Context, c Caller, ev *event.Event, in *ImportKeyMaterialInput) (*event.KeyMaterialImported, keystate.Key, secret.Bytes, error) {
	var k keystate.Key
	var none secret.Bytes
	if err := checkBlob("importToken", in.ImportToken, 6144); err != nil {
		return nil, k, none, err
	}
	if err := checkBlob("encryptedKeyMaterial", in.EncryptedKeyMaterial, 6144); err != nil {
		return nil, k, none, err
	}
	body := &event.KeyMaterialImported{ExpirationModel: in.ExpirationModel, Description: in.KeyMaterialDescription}
	now := s.clock.Now()
	switch in.ExpirationModel {
	case "", "KEY_MATERIAL_EXPIRES":
		body.ExpirationModel = "KEY_MATERIAL_EXPIRES"
		if in.ValidTo == nil {
			return nil, k, none, errorf(CodeValidation, "ValidTo is required when ExpirationModel is KEY_MATERIAL_EXPIRES.")
		}
		body.ValidTo = time.Time(*in.ValidTo)
		if !body.ValidTo.After(now) {
			return nil, k, none, errorf(CodeValidation, "ValidTo must be in the future.")
		}
	case "KEY_MATERIAL_DOES_NOT_EXPIRE":
		if in.ValidTo != nil {
			return nil, k, none, errorf(CodeValidation, "ValidTo must not be set when ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE.")
		}
	default:
		return nil, k, none, notInEnum("expirationModel", in.ExpirationModel, "KEY_MATERIAL_EXPIRES", "KEY_MATERIAL_DOES_NOT_EXPIRE")
	}
	switch in.ImportType {
	case "", "EXISTING_KEY_MATERIAL", "NEW_KEY_MATERIAL":
	default:
		return nil, k, none, notInEnum("importType", in.ImportType, "NEW_KEY_MATERIAL", "EXISTING_KEY_MATERIAL")
	}
	k, err := s.use(c, in.KeyId, false, request{action: "kms:ImportKeyMaterial",
		extra: map[string]string{"kms:expirationmodel": body.ExpirationModel}})
	ev.KeyID = k.ID
	if err != nil {
		return nil, k, none, err
	}
	if err := s.importable(k); err != nil {
		return nil, k, none, err
	}
	if k.HasMaterial() && in.ImportType == "NEW_KEY_MATERIAL" {
		return nil, k, none, errorf(CodeUnsupportedOperation, "keyledger keeps one imported key material per key; re-import it with ImportType EXISTING_KEY_MATERIAL.")
	}
	tok, ok := k.ImportTokens[importTokenID(in.ImportToken)]
	if !ok {
		return nil, k, none, errorf(CodeInvalidImportToken, "The import token is not valid for %s.", s.arnOf(k))
	}
	if !tok.ValidTo.After(now) {
		return nil, k, none, errorf(CodeExpiredImportToken, "The import token expired; call GetParametersForImport again.")
	}
	body.TokenID = tok.ID
	wrapping, err := s.unwrapped(ctx, keystate.Material{ID: tok.WrappingKey.ID, WrappedHash: tok.WrappingKey.WrappedHash,
		PreviousHash: tok.PreviousWrappingHash})
	if err != nil {
		return nil, k, none, err
	}
	wk, err := asymmetric.Parse(keyspec.Spec(tok.WrappingKeySpec), wrapping)
	if err != nil {
		return nil, k, none, err
	}
	mat, err := wk.UnwrapImport(tok.WrappingAlgorithm, in.EncryptedKeyMaterial)
	if err != nil {
		return nil, k, none, errorf(CodeInvalidCiphertext, "The encrypted key material could not be decrypted with this import token's wrapping key and algorithm.")
	}
	if body.PublicKey, err = checkImported(k.Spec, mat); err != nil {
		mat.Clear()
		return nil, k, none, err
	}
	if err := s.checkReplicaImport(k, mat); err != nil {
		mat.Clear()
		return nil, k, none, err
	}
	if k.HasMaterial() {
		cur := k.CurrentMaterial()
		existing, err := s.unwrapped(ctx, cur)
		if err != nil {
			mat.Clear()
			return nil, k, none, err
		}
		if !existing.Equal(mat) {
			mat.Clear()
			return nil, k, none, errorf(CodeIncorrectKeyMaterial, "The key material is not the key material previously imported into %s.", s.arnOf(k))
		}
		body.Material = event.MaterialRef{ID: cur.ID, WrappedHash: cur.WrappedHash}
	}
	return body, k, mat, nil
}

// importTokenID is how the ledger names an import token: its SHA-256.
func importTokenID(token []byte) string {
	h := sha256.Sum256(token)
	return hex.EncodeToString(h[:])
}

// importedMaterialID names imported material by what it is, so importing
// the same material again (after it expired or was deleted) gives it the
// same id and ciphertext made under it decrypts again. The id is an HMAC
// keyed by the material: it commits to the material without revealing it.
func importedMaterialID(keyID string, mat secret.Bytes) string {
	m := hmac.New(sha256.New, mat.Expose())
	m.Write([]byte("keyledger/v1 imported key material id\x00" + keyID))
	return hex.EncodeToString(m.Sum(nil))
}

// checkImported checks that material fits a key of spec, returning the
// public key (base64 DER) of an asymmetric one.
func checkImported(spec keyspec.Spec, mat secret.Bytes) (string, error) {
	bad := errorf(CodeIncorrectKeyMaterial, "The key material is not valid for key spec %s.", spec)
	switch {
	case spec == keyspec.SymmetricDefault:
		if mat.Len() != 32 {
			return "", bad
		}
		return "", nil
	case spec.IsHMAC():
		// AWS accepts from the digest size up to the hash's block size.
		max := 64
		if spec == keyspec.HMAC384 || spec == keyspec.HMAC512 {
			max = 128
		}
		if n := mat.Len(); n < spec.HMACKeySize() || n > max {
			return "", bad
		}
		return "", nil
	}
	pk, err := asymmetric.Parse(spec, mat)
	if err != nil {
		return "", bad
	}
	return base64.StdEncoding.EncodeToString(pk.PublicKeyDER()), nil
}

// DeleteImportedKeyMaterialInput and DeleteImportedKeyMaterialOutput are the AWS
// DeleteImportedKeyMaterial members.
type (
	DeleteImportedKeyMaterialInput struct {
		KeyId         string `json:"KeyId"`
		KeyMaterialId string `json:"KeyMaterialId"`
	}

	DeleteImportedKeyMaterialOutput struct {
		KeyId         string `json:"KeyId"`
		KeyMaterialId string `json:"KeyMaterialId"`
	}
)

// DeleteImportedKeyMaterial destroys a key's imported material; the key
// waits in PendingImport until the same material is imported again.
func (s *Service) DeleteImportedKeyMaterial(ctx context.Context, c Caller, in *DeleteImportedKeyMaterialInput) (*DeleteImportedKeyMaterialOutput, error) {
	var matID string
	k, err := s.changeKey(ctx, c, "DeleteImportedKeyMaterial", in.KeyId, nil, func(k keystate.Key) (event.Body, error) {
		if k.Origin != "EXTERNAL" {
			return nil, errorf(CodeUnsupportedOperation, "%s was not created with Origin EXTERNAL.", s.arnOf(k))
		}
		if !k.HasMaterial() {
			return nil, errorf(CodeInvalidState, "%s has no imported key material.", s.arnOf(k))
		}
		matID = k.CurrentMaterial().ID
		if in.KeyMaterialId != "" && in.KeyMaterialId != matID {
			return nil, errorf(CodeNotFound, "Key material %s does not exist in %s.", in.KeyMaterialId, s.arnOf(k))
		}
		return &event.KeyMaterialDeleted{MaterialID: matID}, nil
	})
	if err != nil {
		return nil, err
	}
	s.forget(matID)
	if err := s.destroyRecorded(ctx, matID); err != nil {
		return nil, err
	}
	return &DeleteImportedKeyMaterialOutput{KeyId: s.arnOf(k), KeyMaterialId: matID}, nil
}

// errDestroyPending answers a deletion that is recorded (the key can no
// longer use the material) but whose stored material could not be
// destroyed yet.
var errDestroyPending = &Error{Code: CodeInternal, Message: "The key material's deletion is recorded and the key can no longer use it, " +
	"but destroying the stored material failed; it is retried until it is gone."}

// destroyRecorded destroys a material whose deletion the ledger already
// holds, before the request is answered: an answer of success means the
// material is gone. The order is record, destroy, answer. A crash before
// the event is acknowledged leaves the key usable and nothing recorded; a
// crash after it leaves a recorded deletion that the start-up Sweep
// completes before the restarted service answers anything (the mechanism
// that finishes a DeleteKey cut short). Destroying first instead would let
// a crash leave a key the ledger says is usable with its material gone,
// and nothing that records or repairs it. A destruction that fails is
// answered errDestroyPending and retried by the scheduler's next run
// (RunDue) and at start-up.
func (s *Service) destroyRecorded(ctx context.Context, id string) error {
	if err := s.materials.Destroy(ctx, id); err != nil {
		s.log.Error("destroying deleted key material failed; retried by the scheduler and at start-up", "material", id, "error", err)
		s.undestroyedMu.Lock()
		s.undestroyed[id] = true
		s.undestroyedMu.Unlock()
		return errDestroyPending
	}
	return nil
}

// retryDestroy retries the destructions destroyRecorded could not finish.
func (s *Service) retryDestroy(ctx context.Context) {
	s.undestroyedMu.Lock()
	defer s.undestroyedMu.Unlock()
	for id := range s.undestroyed {
		if err := s.materials.Destroy(ctx, id); err != nil {
			s.log.Error("destroying deleted key material failed again; retried at the next run", "material", id, "error", err)
			continue
		}
		delete(s.undestroyed, id)
	}
}

// expire is the scheduler's DeleteExpiredKeyMaterial service event.
func (s *Service) expire(ctx context.Context, id string, f fence) error {
	_, err := changing(ctx, s, func(ctx context.Context) (struct{}, error) { return struct{}{}, s.expireOnce(ctx, id, f) })
	return err
}

func (s *Service) expireOnce(ctx context.Context, id string, f fence) error {
	touch(ctx, keyPartition(id))
	now := s.clock.Now()
	k, ok := s.state.Key(id)
	if !ok || f() != nil {
		return nil
	}
	for _, m := range k.Materials {
		if !m.Imported || m.ExpirationModel != "KEY_MATERIAL_EXPIRES" || m.ValidTo.After(now) {
			continue
		}
		due := func() bool {
			k, ok := s.state.Key(id)
			if !ok {
				return false
			}
			for _, cur := range k.Materials {
				if cur.ID == m.ID {
					return cur.Imported && cur.ExpirationModel == "KEY_MATERIAL_EXPIRES" && !cur.ValidTo.After(now)
				}
			}
			return false
		}
		ev := &event.Event{Time: now, Operation: "DeleteExpiredKeyMaterial", Account: k.Account, Region: k.Region,
			KeyID: k.ID, Body: &event.KeyMaterialDeleted{MaterialID: m.ID}}
		s.forget(m.ID)
		if err := s.materials.Destroy(ctx, m.ID); err != nil { // before the event: see deleteKey
			return err
		}
		if _, err := s.appendDue(ctx, ev, f, due); err != nil {
			return err
		}
	}
	return nil
}
