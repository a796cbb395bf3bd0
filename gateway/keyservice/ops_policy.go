package keyservice

import (
	"context"

	"github.com/keyledger/keyledger/ledger/event"
)

type GetKeyPolicyInput struct {
	KeyId      string `json:"KeyId"`
	PolicyName string `json:"PolicyName"`
}

type GetKeyPolicyOutput struct {
	Policy     string `json:"Policy"`
	PolicyName string `json:"PolicyName"`
}

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

type ListKeyPoliciesInput struct {
	KeyId  string `json:"KeyId"`
	Limit  *int32 `json:"Limit"`
	Marker string `json:"Marker"`
}

type ListKeyPoliciesOutput struct {
	PolicyNames []string `json:"PolicyNames"`
	NextMarker  string   `json:"NextMarker,omitempty"`
	Truncated   bool     `json:"Truncated"`
}

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
