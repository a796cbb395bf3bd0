package keyservice

import (
	"context"
	"encoding/hex"
	"maps"
	"slices"
	"strings"

	"github.com/keyledger/keyledger/crypto/keyspec"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/projections/keystate"
	"github.com/keyledger/keyledger/projections/policy"
)

// grantOperations are the operations a grant may name, by the key usage
// they need ("" for any key).
var grantOperations = map[string]keyspec.Usage{
	"Decrypt": keyspec.EncryptDecrypt, "Encrypt": keyspec.EncryptDecrypt, "GenerateDataKey": keyspec.EncryptDecrypt,
	"GenerateDataKeyWithoutPlaintext": keyspec.EncryptDecrypt, "ReEncryptFrom": keyspec.EncryptDecrypt,
	"ReEncryptTo": keyspec.EncryptDecrypt, "GenerateDataKeyPair": keyspec.EncryptDecrypt,
	"GenerateDataKeyPairWithoutPlaintext": keyspec.EncryptDecrypt, "Sign": keyspec.SignVerify, "Verify": keyspec.SignVerify,
	"GetPublicKey": "", "CreateGrant": "", "RetireGrant": "", "DescribeKey": "",
	"GenerateMac": keyspec.GenerateVerifyMAC, "VerifyMac": keyspec.GenerateVerifyMAC, "DeriveSharedSecret": keyspec.KeyAgreement,
}

// GrantConstraints, CreateGrantInput and CreateGrantOutput are the AWS CreateGrant members.
type (
	GrantConstraints struct {
		EncryptionContextSubset map[string]string `json:"EncryptionContextSubset,omitempty"`
		EncryptionContextEquals map[string]string `json:"EncryptionContextEquals,omitempty"`
	}

	CreateGrantInput struct {
		KeyId             string            `json:"KeyId"`
		GranteePrincipal  string            `json:"GranteePrincipal"`
		RetiringPrincipal string            `json:"RetiringPrincipal"`
		Operations        []string          `json:"Operations"`
		Constraints       *GrantConstraints `json:"Constraints"`
		GrantTokens       []string          `json:"GrantTokens"`
		Name              string            `json:"Name"`
		DryRun            bool              `json:"DryRun"`
	}

	CreateGrantOutput struct {
		GrantToken string `json:"GrantToken"`
		GrantId    string `json:"GrantId"`
	}
)

// CreateGrant lets a principal use a key for exactly the named operations.
// A grant lives on its key's chain, whichever account the caller or the
// grantee is in: the change is fenced on the key.
func (s *Service) CreateGrant(ctx context.Context, c Caller, in *CreateGrantInput) (*CreateGrantOutput, error) {
	return changing(ctx, s, func(ctx context.Context) (*CreateGrantOutput, error) { return s.createGrant(ctx, c, in) })
}

func (s *Service) createGrant(ctx context.Context, c Caller, in *CreateGrantInput) (*CreateGrantOutput, error) {
	s.touchRef(ctx, c, in.KeyId)
	ev := s.newEvent(c, "CreateGrant")
	ev.Body = &event.APICall{Params: map[string]string{"granteePrincipal": in.GranteePrincipal, "operations": strings.Join(in.Operations, ",")}}
	fail := func(err error) (*CreateGrantOutput, error) { return nil, s.refuse(ctx, ev, err) }
	switch {
	case in.GranteePrincipal == "":
		return fail(missing("granteePrincipal"))
	case !policy.ValidPrincipal(in.GranteePrincipal):
		return fail(errorf(CodeValidation, "GranteePrincipal must be a principal ARN."))
	case in.RetiringPrincipal != "" && !policy.ValidPrincipal(in.RetiringPrincipal):
		return fail(errorf(CodeValidation, "RetiringPrincipal must be a principal ARN."))
	case len(in.Operations) == 0:
		return fail(missing("operations"))
	case len(in.Name) > 256:
		return fail(tooLong("name", in.Name, 256))
	}
	if err := s.checkGrantTokens(in.GrantTokens); err != nil {
		return fail(err)
	}
	for _, op := range in.Operations {
		if _, ok := grantOperations[op]; !ok {
			return fail(notInEnum("operations", op, slices.Sorted(maps.Keys(grantOperations))...))
		}
	}
	constraint := ""
	if in.Constraints != nil {
		switch {
		case in.Constraints.EncryptionContextEquals != nil:
			constraint = "EncryptionContextEquals"
		case in.Constraints.EncryptionContextSubset != nil:
			constraint = "EncryptionContextSubset"
		}
	}
	k, err := s.resolve(c, in.KeyId, false)
	ev.KeyID = k.ID
	if err != nil {
		return fail(err)
	}
	via, err := s.decide(c, request{action: "kms:CreateGrant", key: &k, ref: in.KeyId,
		extra: map[string]string{"kms:granteeprincipal": in.GranteePrincipal, "kms:retiringprincipal": in.RetiringPrincipal,
			"kms:grantconstrainttype": constraint},
		multi: map[string][]string{"kms:grantoperations": in.Operations}})
	if err != nil {
		return fail(err)
	}
	// A grantee creating grants through its own grant may pass on only
	// operations that grant has, as AWS limits it.
	if via != nil {
		for _, op := range in.Operations {
			if !contains(via.Operations, op) {
				return fail(accessDenied(c, "kms:CreateGrant", s.arnOf(k),
					"because grant "+via.ID+" does not include the "+op+" operation", "grant-derived CreateGrant beyond its grant"))
			}
		}
	}
	for _, op := range in.Operations {
		if need := grantOperations[op]; need != "" && need != k.Usage {
			return fail(errorf(CodeValidation, "Grant operation %s is not valid for %s, whose key usage is %s.", op, s.arnOf(k), k.Usage))
		}
	}
	if constraint != "" && k.Spec != keyspec.SymmetricDefault {
		return fail(errorf(CodeValidation, "Grant constraints are valid only for symmetric encryption KMS keys."))
	}
	if err := s.notPendingDeletion(k); err != nil {
		return fail(err)
	}
	if in.DryRun {
		return fail(errDryRun)
	}
	id := hex.EncodeToString(randomBytes(32))
	token, hash := grantToken(id)
	body := &event.GrantCreated{GrantID: id, Name: in.Name, GranteePrincipal: in.GranteePrincipal,
		RetiringPrincipal: in.RetiringPrincipal, Operations: slices.Sorted(slices.Values(in.Operations)), TokenHash: hash}
	if in.Constraints != nil {
		body.EncryptionContextEquals, body.EncryptionContextSubset = in.Constraints.EncryptionContextEquals, in.Constraints.EncryptionContextSubset
	}
	ev.Account, ev.Body = k.Account, body
	if err := s.record(ctx, ev); err != nil {
		return nil, err
	}
	return &CreateGrantOutput{GrantToken: token, GrantId: id}, nil
}

// GrantListEntry, ListGrantsInput and ListGrantsOutput are the AWS ListGrants and
// ListRetirableGrants members.
type (
	GrantListEntry struct {
		KeyId             string            `json:"KeyId"`
		GrantId           string            `json:"GrantId"`
		Name              string            `json:"Name,omitempty"`
		CreationDate      *EpochTime        `json:"CreationDate"`
		GranteePrincipal  string            `json:"GranteePrincipal"`
		RetiringPrincipal string            `json:"RetiringPrincipal,omitempty"`
		IssuingAccount    string            `json:"IssuingAccount"`
		Operations        []string          `json:"Operations"`
		Constraints       *GrantConstraints `json:"Constraints,omitempty"`
	}

	ListGrantsInput struct {
		KeyId             string `json:"KeyId"`
		GrantId           string `json:"GrantId"`
		GranteePrincipal  string `json:"GranteePrincipal"`
		RetiringPrincipal string `json:"RetiringPrincipal"`
		Limit             *int32 `json:"Limit"`
		Marker            string `json:"Marker"`
	}

	ListGrantsOutput struct {
		Grants     []GrantListEntry `json:"Grants"`
		NextMarker string           `json:"NextMarker,omitempty"`
		Truncated  bool             `json:"Truncated"`
	}
)

func (s *Service) grantEntry(g keystate.Grant) GrantListEntry {
	e := GrantListEntry{KeyId: s.keyArn(g.IssuingAccount, g.KeyID), GrantId: g.ID, Name: g.Name, CreationDate: epoch(g.Created),
		GranteePrincipal: g.GranteePrincipal, RetiringPrincipal: g.RetiringPrincipal,
		IssuingAccount: accountRoot(g.IssuingAccount), Operations: g.Operations}
	if g.EncryptionContextEquals != nil || g.EncryptionContextSubset != nil {
		e.Constraints = &GrantConstraints{EncryptionContextEquals: g.EncryptionContextEquals, EncryptionContextSubset: g.EncryptionContextSubset}
	}
	return e
}

// ListGrants lists a key's grants.
func (s *Service) ListGrants(ctx context.Context, c Caller, in *ListGrantsInput) (*ListGrantsOutput, error) {
	defer s.shared()()
	ev := s.newEvent(c, "ListGrants")
	ev.Body = &event.APICall{Params: listParams(&ListInput{Limit: in.Limit, Marker: in.Marker})}
	k, err := s.use(c, in.KeyId, false, request{action: "kms:ListGrants"})
	ev.KeyID = k.ID
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	var grants []keystate.Grant
	for _, g := range k.Grants {
		if (in.GrantId == "" || g.ID == in.GrantId) && (in.GranteePrincipal == "" || g.GranteePrincipal == in.GranteePrincipal) {
			grants = append(grants, g)
		}
	}
	slices.SortFunc(grants, func(a, b keystate.Grant) int { return strings.Compare(a.ID, b.ID) })
	out, err := s.grantPage(grants, in.Limit, in.Marker)
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	if err := s.record(ctx, ev); err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Service) grantPage(grants []keystate.Grant, l *int32, marker string) (*ListGrantsOutput, error) {
	limit, err := limitOf(l, 50, 100)
	if err != nil {
		return nil, err
	}
	pg, next, err := page(grants, func(g keystate.Grant) string { return g.ID }, marker, limit)
	if err != nil {
		return nil, err
	}
	out := &ListGrantsOutput{Grants: []GrantListEntry{}, NextMarker: next, Truncated: next != ""}
	for _, g := range pg {
		out.Grants = append(out.Grants, s.grantEntry(g))
	}
	return out, nil
}

// ListRetirableGrants lists the grants whose retiring principal is the
// given principal, on keys of any account. As AWS documents it, the
// principal must be in the caller's account, and the caller needs
// kms:ListRetirableGrants from its identity policies, on that principal as
// the resource: no other account's grants are listed by naming their
// principal.
func (s *Service) ListRetirableGrants(ctx context.Context, c Caller, in *ListGrantsInput) (*ListGrantsOutput, error) {
	defer s.shared()()
	ev := s.newEvent(c, "ListRetirableGrants")
	ev.Body = &event.APICall{Params: map[string]string{"retiringPrincipal": in.RetiringPrincipal}}
	if in.RetiringPrincipal == "" {
		return nil, s.refuse(ctx, ev, missing("retiringPrincipal"))
	}
	if len(in.RetiringPrincipal) > 256 {
		return nil, s.refuse(ctx, ev, tooLong("retiringPrincipal", in.RetiringPrincipal, 256))
	}
	if principalAccount(in.RetiringPrincipal) != c.Account {
		return nil, s.refuse(ctx, ev, accessDenied(c, "kms:ListRetirableGrants", in.RetiringPrincipal,
			"because the retiring principal is not in the caller's account", "retiring principal of another account"))
	}
	if err := s.authorizeIdentity(c, "kms:ListRetirableGrants", in.RetiringPrincipal); err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	out, err := s.grantPage(s.state.GrantsRetirableBy(in.RetiringPrincipal), in.Limit, in.Marker)
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	if err := s.record(ctx, ev); err != nil {
		return nil, err
	}
	return out, nil
}

// principalAccount is the account of an IAM principal ARN
// (arn:aws:iam::<account>:…), or "" when arn is not one.
func principalAccount(arn string) string {
	parts := splitARN(arn)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "iam" {
		return ""
	}
	return parts[4]
}

// RetireGrantInput is the AWS RetireGrant request.
type RetireGrantInput struct {
	GrantToken string `json:"GrantToken"`
	KeyId      string `json:"KeyId"`
	GrantId    string `json:"GrantId"`
	DryRun     bool   `json:"DryRun"`
}

// RetireGrant ends a grant; the retiring principal may always, the grantee
// when the grant names RetireGrant.
//
// A grant token names no key: one this instance does not know is looked
// up again once it folded every change stored before (Sync), so a grant
// another instance created is found; the grant's key fences the change.
func (s *Service) RetireGrant(ctx context.Context, c Caller, in *RetireGrantInput) (*struct{}, error) {
	if in.GrantToken != "" {
		if _, ok := s.grantByToken(in.GrantToken); !ok {
			if err := s.ledger.Sync(ctx); err != nil {
				s.log.Warn("could not catch up with the ledger before refusing a grant token", "error", err)
			}
		}
	}
	return changing(ctx, s, func(ctx context.Context) (*struct{}, error) { return s.retireGrant(ctx, c, in) })
}

// grantByToken finds the grant a grant token is for.
func (s *Service) grantByToken(token string) (keystate.Grant, bool) {
	return s.state.GrantByTokenHash(tokenHash(token))
}

func (s *Service) retireGrant(ctx context.Context, c Caller, in *RetireGrantInput) (*struct{}, error) {
	ev := s.newEvent(c, "RetireGrant")
	var g keystate.Grant
	err := func() error {
		switch {
		case in.GrantToken != "":
			var ok bool
			if g, ok = s.grantByToken(in.GrantToken); !ok {
				return errorf(CodeInvalidGrantToken, "The grant token is not valid.")
			}
			touch(ctx, keyPartition(g.KeyID))
		case in.KeyId != "" && in.GrantId != "":
			s.touchRef(ctx, c, in.KeyId)
			k, err := s.resolve(c, in.KeyId, false)
			if err != nil {
				return err
			}
			var ok bool
			if g, ok = k.Grants[in.GrantId]; !ok {
				return errorf(CodeInvalidGrantID, "Grant %s does not exist on %s.", in.GrantId, s.arnOf(k))
			}
		default:
			return errorf(CodeValidation, "Specify GrantToken, or KeyId and GrantId.")
		}
		ev.KeyID, ev.Account = g.KeyID, g.IssuingAccount
		if c.PrincipalARN != g.RetiringPrincipal && !(c.PrincipalARN == g.GranteePrincipal && contains(g.Operations, "RetireGrant")) {
			return accessDenied(c, "kms:RetireGrant", s.keyArn(g.IssuingAccount, g.KeyID),
				"because it is neither the grant's retiring principal nor a grantee allowed to retire it", "not the retiring principal")
		}
		if in.DryRun {
			return errDryRun
		}
		return nil
	}()
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	ev.Body = &event.GrantRetired{GrantID: g.ID}
	if err := s.record(ctx, ev); err != nil {
		return nil, err
	}
	return &struct{}{}, nil
}

// RevokeGrantInput is the AWS RevokeGrant request.
type RevokeGrantInput struct {
	KeyId   string `json:"KeyId"`
	GrantId string `json:"GrantId"`
	DryRun  bool   `json:"DryRun"`
}

// RevokeGrant ends a grant, for those the key's policies allow to.
func (s *Service) RevokeGrant(ctx context.Context, c Caller, in *RevokeGrantInput) (*struct{}, error) {
	return s.change(ctx, c, "RevokeGrant", in.KeyId, nil, func(k keystate.Key) (event.Body, error) {
		if in.GrantId == "" {
			return nil, missing("grantId")
		}
		if _, ok := k.Grants[in.GrantId]; !ok {
			return nil, errorf(CodeNotFound, "Grant %s does not exist on %s.", in.GrantId, s.arnOf(k))
		}
		if in.DryRun {
			return nil, errDryRun
		}
		return &event.GrantRetired{GrantID: in.GrantId}, nil
	})
}
