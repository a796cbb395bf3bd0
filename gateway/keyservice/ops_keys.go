package keyservice

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/keyledger/keyledger/crypto/keyspec"
	"github.com/keyledger/keyledger/crypto/secret"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/projections/keystate"
)

// CreateKeyInput and CreateKeyOutput are the AWS CreateKey members.
type (
	CreateKeyInput struct {
		Policy                         *string `json:"Policy"`
		Description                    *string `json:"Description"`
		KeyUsage                       string  `json:"KeyUsage"`
		CustomerMasterKeySpec          string  `json:"CustomerMasterKeySpec"`
		KeySpec                        string  `json:"KeySpec"`
		Origin                         string  `json:"Origin"`
		CustomKeyStoreId               string  `json:"CustomKeyStoreId"`
		BypassPolicyLockoutSafetyCheck bool    `json:"BypassPolicyLockoutSafetyCheck"`
		Tags                           []Tag   `json:"Tags"`
		MultiRegion                    bool    `json:"MultiRegion"`
		XksKeyId                       string  `json:"XksKeyId"`
	}

	CreateKeyOutput struct {
		KeyMetadata *KeyMetadata `json:"KeyMetadata"`
	}
)

// CreateKey makes a key with new material, wrapped under the root key and
// stored in the material store before the KeyCreated event commits to it.
// An EXTERNAL key gets its material later, from ImportKeyMaterial.
func (s *Service) CreateKey(ctx context.Context, c Caller, in *CreateKeyInput) (*CreateKeyOutput, error) {
	ev := s.newEvent(c, "CreateKey")
	if err := s.authorizeIdentityWith(c, "kms:CreateKey", "*", map[string]string{"kms:multiregion": strconv.FormatBool(in.MultiRegion)}); err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	body, err := s.validateCreateKey(c, in)
	if err != nil {
		return nil, s.refuse(ctx, ev, err) // a refusal changes no state: no lock needed
	}
	// Generating (RSA takes seconds) and storing happen before the lock:
	// they touch no state.
	var mat secret.Bytes
	if body.Origin == "AWS_KMS" {
		if mat, body.PublicKey, err = newMaterial(keyspec.Spec(body.KeySpec)); err == nil {
			body.Material, err = s.storeMaterial(ctx, mat)
		}
		if err != nil {
			mat.Clear()
			return nil, s.refuse(ctx, ev, err)
		}
	}
	keyID := NewID()
	if body.MultiRegion {
		keyID = newMRKID()
	}
	out, err := changing(ctx, s, func(ctx context.Context) (*CreateKeyOutput, error) {
		ev.KeyID, ev.Body = keyID, body
		if err := s.record(ctx, ev); err != nil {
			return nil, err
		}
		if body.Material.ID != "" {
			s.remember(body.Material.ID, mat)
		}
		k, _ := s.state.Key(keyID)
		return &CreateKeyOutput{KeyMetadata: s.metadata(k)}, nil
	})
	if err != nil {
		mat.Clear()
	}
	return out, err
}

func (s *Service) validateCreateKey(c Caller, in *CreateKeyInput) (*event.KeyCreated, error) {
	if in.KeySpec != "" && in.CustomerMasterKeySpec != "" {
		return nil, errorf(CodeValidation, "You cannot specify KeySpec and CustomerMasterKeySpec in the same request. CustomerMasterKeySpec is deprecated.")
	}
	spec := keyspec.Spec(in.KeySpec + in.CustomerMasterKeySpec)
	if spec == "" {
		spec = keyspec.SymmetricDefault
	}
	if !spec.Known() {
		return nil, notInEnum("keySpec", string(spec), "SYMMETRIC_DEFAULT", "RSA_2048", "RSA_3072", "RSA_4096",
			"ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", "ECC_SECG_P256K1", "ECC_NIST_EDWARDS25519",
			"HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512", "SM2", "ML_DSA_44", "ML_DSA_65", "ML_DSA_87")
	}
	usage := keyspec.Usage(in.KeyUsage)
	if usage == "" {
		usage = spec.DefaultUsage()
		if !spec.Allows(usage) {
			return nil, errorf(CodeValidation, "KeyUsage is required for KeySpec %s.", spec)
		}
	}
	if !usage.Known() {
		return nil, notInEnum("keyUsage", string(usage), "SIGN_VERIFY", "ENCRYPT_DECRYPT", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT")
	}
	if !spec.Allows(usage) {
		return nil, errorf(CodeValidation, "KeyUsage %s is not compatible with KeySpec %s.", usage, spec)
	}
	if spec == keyspec.SM2 {
		return nil, errorf(CodeUnsupportedOperation, "KeySpec SM2 is only available in China Regions.")
	}
	origin := in.Origin
	switch origin {
	case "":
		origin = "AWS_KMS"
	case "AWS_KMS", "EXTERNAL":
	case "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE":
		return nil, errorf(CodeUnsupportedOperation, "Origin %s needs a custom key store, which keyledger does not offer.", in.Origin)
	default:
		return nil, notInEnum("origin", in.Origin, "AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE")
	}
	if in.CustomKeyStoreId != "" {
		return nil, errorf(CodeCustomKeyStoreNotFnd, "Custom key store %s does not exist.", in.CustomKeyStoreId)
	}
	if in.XksKeyId != "" {
		return nil, errorf(CodeValidation, "XksKeyId requires Origin EXTERNAL_KEY_STORE.")
	}
	desc := ""
	if in.Description != nil {
		if len(*in.Description) > 8192 {
			return nil, tooLong("description", *in.Description, 8192)
		}
		desc = *in.Description
	}
	policy := s.defaultPolicy(c.Account)
	if in.Policy != nil {
		if err := s.checkKeyPolicy(c, *in.Policy, in.BypassPolicyLockoutSafetyCheck); err != nil {
			return nil, err
		}
		policy = *in.Policy
	}
	tags, err := validateTags(in.Tags)
	if err != nil {
		return nil, err
	}
	return &event.KeyCreated{Description: desc, KeySpec: string(spec), KeyUsage: string(usage),
		Origin: origin, Policy: policy, Tags: tags, MultiRegion: in.MultiRegion}, nil
}

// defaultPolicy is the key policy AWS gives a key created without one: the
// account's root gets full access, which delegates to IAM policies.
func (s *Service) defaultPolicy(account string) string {
	return fmt.Sprintf(`{
  "Version" : "2012-10-17",
  "Id" : "key-default-1",
  "Statement" : [ {
    "Sid" : "Enable IAM User Permissions",
    "Effect" : "Allow",
    "Principal" : {
      "AWS" : "arn:aws:iam::%s:root"
    },
    "Action" : "kms:*",
    "Resource" : "*"
  } ]
}`, account)
}

// KeyIDInput is the request of the operations that take only a KeyId
// (DescribeKey, EnableKey, DisableKey, CancelKeyDeletion, the rotation
// operations, …).
type KeyIDInput struct {
	KeyId       string   `json:"KeyId"`
	GrantTokens []string `json:"GrantTokens"`
}

// DescribeKeyOutput is the AWS DescribeKey response.
type DescribeKeyOutput struct {
	KeyMetadata *KeyMetadata `json:"KeyMetadata"`
}

// DescribeKey returns a key's metadata; aliases are accepted.
func (s *Service) DescribeKey(ctx context.Context, c Caller, in *KeyIDInput) (*DescribeKeyOutput, error) {
	defer s.shared()()
	ev := s.newEvent(c, "DescribeKey")
	if err := s.checkGrantTokens(in.GrantTokens); err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	k, err := s.use(c, in.KeyId, true, request{action: "kms:DescribeKey"})
	ev.KeyID = k.ID
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	if err := s.record(ctx, ev); err != nil {
		return nil, err
	}
	return &DescribeKeyOutput{KeyMetadata: s.metadata(k)}, nil
}

// ListInput, KeyListEntry and ListKeysOutput are the AWS ListKeys members;
// ListInput is also the paging the other List operations share.
type (
	ListInput struct {
		Limit  *int32 `json:"Limit"`
		Marker string `json:"Marker"`
	}

	KeyListEntry struct {
		KeyId  string `json:"KeyId"`
		KeyArn string `json:"KeyArn"`
	}

	ListKeysOutput struct {
		Keys       []KeyListEntry `json:"Keys"`
		NextMarker string         `json:"NextMarker,omitempty"`
		Truncated  bool           `json:"Truncated"`
	}
)

// ListKeys lists the account's keys in key id order.
func (s *Service) ListKeys(ctx context.Context, c Caller, in *ListInput) (*ListKeysOutput, error) {
	defer s.shared()()
	ev := s.newEvent(c, "ListKeys")
	ev.Body = &event.APICall{Params: listParams(in)}
	if err := s.authorizeIdentity(c, "kms:ListKeys", "*"); err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	limit, err := limitOf(in.Limit, 100, 1000)
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	keys, next, err := indexedPage(func(after string, n int) ([]keystate.Key, bool) { return s.state.KeysPage(c.Account, after, n) },
		func(k keystate.Key) string { return k.ID }, in.Marker, limit)
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	if err := s.record(ctx, ev); err != nil {
		return nil, err
	}
	out := &ListKeysOutput{Keys: []KeyListEntry{}, NextMarker: next, Truncated: next != ""}
	for _, k := range keys {
		out.Keys = append(out.Keys, KeyListEntry{KeyId: k.ID, KeyArn: s.arnOf(k)})
	}
	return out, nil
}

func listParams(in *ListInput) map[string]string {
	p := map[string]string{}
	if in.Limit != nil {
		p["limit"] = strconv.Itoa(int(*in.Limit))
	}
	if in.Marker != "" {
		p["marker"] = in.Marker
	}
	return p
}

// UpdateKeyDescriptionInput is the AWS UpdateKeyDescription request.
type UpdateKeyDescriptionInput struct {
	KeyId       string  `json:"KeyId"`
	Description *string `json:"Description"`
}

// UpdateKeyDescription replaces a key's description.
func (s *Service) UpdateKeyDescription(ctx context.Context, c Caller, in *UpdateKeyDescriptionInput) (*struct{}, error) {
	return s.change(ctx, c, "UpdateKeyDescription", in.KeyId, nil, func(k keystate.Key) (event.Body, error) {
		if in.Description == nil {
			return nil, missing("description")
		}
		if len(*in.Description) > 8192 {
			return nil, tooLong("description", *in.Description, 8192)
		}
		if err := s.notPendingDeletion(k); err != nil {
			return nil, err
		}
		return &event.KeyDescriptionUpdated{Description: *in.Description}, nil
	})
}

// EnableKey sets a key's state to Enabled.
func (s *Service) EnableKey(ctx context.Context, c Caller, in *KeyIDInput) (*struct{}, error) {
	return s.change(ctx, c, "EnableKey", in.KeyId, nil, func(k keystate.Key) (event.Body, error) {
		if err := s.notPendingDeletion(k); err != nil {
			return nil, err
		}
		if err := s.notUpdating(k); err != nil {
			return nil, err
		}
		return &event.KeyEnabled{}, nil
	})
}

// DisableKey sets a key's state to Disabled.
func (s *Service) DisableKey(ctx context.Context, c Caller, in *KeyIDInput) (*struct{}, error) {
	return s.change(ctx, c, "DisableKey", in.KeyId, nil, func(k keystate.Key) (event.Body, error) {
		if err := s.notPendingDeletion(k); err != nil {
			return nil, err
		}
		if err := s.notUpdating(k); err != nil {
			return nil, err
		}
		return &event.KeyDisabled{}, nil
	})
}

// change runs a state-changing operation on one key (key id or ARN only, as
// AWS requires for management operations): decide returns the event body or
// the refusal.
func (s *Service) change(ctx context.Context, c Caller, op, ref string, extra map[string]string, decide func(keystate.Key) (event.Body, error)) (*struct{}, error) {
	_, err := s.changeKey(ctx, c, op, ref, extra, decide)
	if err != nil {
		return nil, err
	}
	return &struct{}{}, nil
}

func (s *Service) changeKey(ctx context.Context, c Caller, op, ref string, extra map[string]string, decide func(keystate.Key) (event.Body, error)) (keystate.Key, error) {
	return changing(ctx, s, func(ctx context.Context) (keystate.Key, error) {
		s.touchRef(ctx, c, ref)
		ev := s.newEvent(c, op)
		k, err := s.use(c, ref, false, request{action: "kms:" + op, extra: extra})
		ev.KeyID = k.ID
		if err != nil {
			return k, s.refuse(ctx, ev, err)
		}
		body, err := decide(k)
		if err != nil {
			return k, s.refuse(ctx, ev, err)
		}
		ev.Body = body
		if err := s.record(ctx, ev); err != nil {
			return k, err
		}
		k, _ = s.state.Key(k.ID)
		return k, nil
	})
}

// ScheduleKeyDeletionInput and ScheduleKeyDeletionOutput are the AWS
// ScheduleKeyDeletion members.
type (
	ScheduleKeyDeletionInput struct {
		KeyId               string `json:"KeyId"`
		PendingWindowInDays *int32 `json:"PendingWindowInDays"`
	}

	ScheduleKeyDeletionOutput struct {
		KeyId               string     `json:"KeyId"`
		DeletionDate        *EpochTime `json:"DeletionDate"`
		KeyState            string     `json:"KeyState"`
		PendingWindowInDays int        `json:"PendingWindowInDays"`
	}
)

// ScheduleKeyDeletion starts a key's 7–30 day waiting period; when it ends
// the scheduler deletes the key and destroys its material.
func (s *Service) ScheduleKeyDeletion(ctx context.Context, c Caller, in *ScheduleKeyDeletionInput) (*ScheduleKeyDeletionOutput, error) {
	days := int64(30)
	if in.PendingWindowInDays != nil {
		days = int64(*in.PendingWindowInDays)
	}
	extra := map[string]string{"kms:schedulekeydeletionpendingwindowindays": strconv.FormatInt(days, 10)}
	k, err := s.changeKey(ctx, c, "ScheduleKeyDeletion", in.KeyId, extra, func(k keystate.Key) (event.Body, error) {
		if days < 7 || days > 30 {
			return nil, outOfRange("pendingWindowInDays", days, 7, 30)
		}
		if err := s.notPendingDeletion(k); err != nil {
			return nil, err
		}
		return &event.KeyDeletionScheduled{
			DeletionDate:      s.clock.Now().Add(time.Duration(days) * 24 * time.Hour),
			PendingWindowDays: int(days),
		}, nil
	})
	if err != nil {
		return nil, err
	}
	return &ScheduleKeyDeletionOutput{KeyId: s.arnOf(k), DeletionDate: epoch(k.DeletionDate),
		KeyState: string(k.State), PendingWindowInDays: k.PendingWindowDays}, nil
}

// CancelKeyDeletionOutput is the AWS CancelKeyDeletion response.
type CancelKeyDeletionOutput struct {
	KeyId string `json:"KeyId"`
}

// CancelKeyDeletion stops a scheduled deletion; the key becomes Disabled.
func (s *Service) CancelKeyDeletion(ctx context.Context, c Caller, in *KeyIDInput) (*CancelKeyDeletionOutput, error) {
	k, err := s.changeKey(ctx, c, "CancelKeyDeletion", in.KeyId, nil, func(k keystate.Key) (event.Body, error) {
		if k.State == keystate.PendingReplicaDeletion { // its window has not started
			return &event.KeyDeletionCanceled{}, nil
		}
		if k.State != keystate.PendingDeletion {
			return nil, errorf(CodeInvalidState, "%s is not pending deletion.", s.arnOf(k))
		}
		if !k.DeletionDate.After(s.clock.Now()) { // being deleted: its material may be gone already
			return nil, errorf(CodeInvalidState, "%s is pending deletion and its waiting period has ended.", s.arnOf(k))
		}
		return &event.KeyDeletionCanceled{}, nil
	})
	if err != nil {
		return nil, err
	}
	return &CancelKeyDeletionOutput{KeyId: s.arnOf(k)}, nil
}
