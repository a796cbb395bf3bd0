package keyservice

import (
	"context"
	"strconv"

	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/projections/keystate"
	"github.com/keyledger/keyledger/projections/policy"
)

// GetKeyPolicyInput and GetKeyPolicyOutput are the AWS GetKeyPolicy members.
type (
	GetKeyPolicyInput struct {
		KeyId      string `json:"KeyId"`
		PolicyName string `json:"PolicyName"`
	}

	GetKeyPolicyOutput struct {
		Policy     string `json:"Policy"`
		PolicyName string `json:"PolicyName"`
	}
)

// GetKeyPolicy returns the key's policy (the only one is named "default").
func (s *Service) GetKeyPolicy(ctx context.Context, c Caller, in *GetKeyPolicyInput) (*GetKeyPolicyOutput, error) {
	defer s.shared()()
	ev := s.newEvent(c, "GetKeyPolicy")
	k, err := s.use(c, in.KeyId, false, request{action: "kms:GetKeyPolicy"})
	ev.KeyID = k.ID
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	name := in.PolicyName
	if name == "" {
		name = "default"
	}
	ev.Body = &event.APICall{Params: map[string]string{"policyName": name}}
	if name != "default" {
		return nil, s.refuse(ctx, ev, errorf(CodeNotFound, "No such policy exists: %s", name))
	}
	if err := s.record(ctx, ev); err != nil {
		return nil, err
	}
	return &GetKeyPolicyOutput{Policy: k.Policy, PolicyName: name}, nil
}

// ListKeyPoliciesInput and ListKeyPoliciesOutput are the AWS ListKeyPolicies
// members.
type (
	ListKeyPoliciesInput struct {
		KeyId  string `json:"KeyId"`
		Limit  *int32 `json:"Limit"`
		Marker string `json:"Marker"`
	}

	ListKeyPoliciesOutput struct {
		PolicyNames []string `json:"PolicyNames"`
		NextMarker  string   `json:"NextMarker,omitempty"`
		Truncated   bool     `json:"Truncated"`
	}
)

// ListKeyPolicies lists the key's policy names: always just "default".
func (s *Service) ListKeyPolicies(ctx context.Context, c Caller, in *ListKeyPoliciesInput) (*ListKeyPoliciesOutput, error) {
	defer s.shared()()
	ev := s.newEvent(c, "ListKeyPolicies")
	k, err := s.use(c, in.KeyId, false, request{action: "kms:ListKeyPolicies"})
	ev.KeyID = k.ID
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	limit, err := limitOf(in.Limit, 100, 1000)
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	names, next, err := page([]string{"default"}, func(s string) string { return s }, in.Marker, limit)
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	if err := s.record(ctx, ev); err != nil {
		return nil, err
	}
	return &ListKeyPoliciesOutput{PolicyNames: names, NextMarker: next, Truncated: next != ""}, nil
}

// checkKeyPolicy validates a key policy as AWS does: it parses, every
// statement names a principal, the principals of configured accounts exist,
// and, unless bypassed, the policy still lets the caller change it (the
// policy lockout safety check).
func (s *Service) checkKeyPolicy(c Caller, text string, bypass bool) error {
	if text == "" {
		return tooShort("policy", text, 1)
	}
	if len(text) > policy.MaxSize {
		return errorf(CodeLimitExceeded, "Key policy is %d characters; the limit is %d.", len(text), policy.MaxSize)
	}
	doc, err := policy.Parse(text)
	if err == nil {
		err = policy.CheckStrict(text)
	}
	if err != nil {
		return errorf(CodeMalformedPolicy, "%s", err.Error())
	}
	for i, st := range doc.Statements {
		if st.Principal == nil && st.NotPrincipal == nil {
			return errorf(CodeMalformedPolicy, "Policy statement %d has no Principal; every key policy statement needs one.", i+1)
		}
		for _, ps := range []*policy.Principals{st.Principal, st.NotPrincipal} {
			if ps == nil || s.principals == nil {
				continue
			}
			for _, a := range ps.AWS {
				if acct := accountOf(a); s.principals.HasAccount(acct) && !s.principals.Exists(a) {
					return errorf(CodeMalformedPolicy, "Policy contains a statement with one or more invalid principals.")
				}
			}
		}
	}
	if bypass {
		return nil
	}
	req := policy.Request{Principal: policy.Principal{ARN: c.PrincipalARN, Account: c.Account}, Action: "kms:PutKeyPolicy",
		Resource: "*", Context: s.conditions(c, request{action: "kms:PutKeyPolicy"})}
	r := doc.Evaluate(req)
	ir, _ := evaluateIdentity(c, req)
	if r.Deny == nil && (r.Allow != nil || r.AllowAccount != nil && ir.Allow != nil && ir.Deny == nil) {
		return nil
	}
	return errorf(CodeMalformedPolicy, "The new key policy will not allow you to update the key policy in the future.")
}

// accountOf is the account of a principal (an account id or an ARN).
func accountOf(principal string) string {
	if len(principal) == 12 {
		return principal
	}
	parts := splitARN(principal)
	if len(parts) == 6 {
		return parts[4]
	}
	return ""
}

// PutKeyPolicyInput is the AWS PutKeyPolicy request.
type PutKeyPolicyInput struct {
	KeyId                          string `json:"KeyId"`
	PolicyName                     string `json:"PolicyName"`
	Policy                         string `json:"Policy"`
	BypassPolicyLockoutSafetyCheck bool   `json:"BypassPolicyLockoutSafetyCheck"`
}

// PutKeyPolicy replaces a key's policy.
func (s *Service) PutKeyPolicy(ctx context.Context, c Caller, in *PutKeyPolicyInput) (*struct{}, error) {
	extra := map[string]string{"kms:bypasspolicylockoutsafetycheck": strconv.FormatBool(in.BypassPolicyLockoutSafetyCheck)}
	return s.change(ctx, c, "PutKeyPolicy", in.KeyId, extra, func(k keystate.Key) (event.Body, error) {
		if in.PolicyName != "" && in.PolicyName != "default" {
			return nil, errorf(CodeValidation, "The only valid PolicyName is default.")
		}
		if err := s.checkKeyPolicy(c, in.Policy, in.BypassPolicyLockoutSafetyCheck); err != nil {
			return nil, err
		}
		if err := s.notPendingDeletion(k); err != nil {
			return nil, err
		}
		return &event.KeyPolicyPut{Policy: in.Policy, BypassPolicyLockoutSafetyCheck: in.BypassPolicyLockoutSafetyCheck}, nil
	})
}
