package keyservice_test

import (
	"context"
	"strings"
	"testing"

	ks "github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/projections/policy"
)

// bobOnly is a key policy that lets only bob do anything: alice, who
// would put it, locks herself out.
const bobOnly = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
	"Principal":{"AWS":"arn:aws:iam::111122223333:user/bob"},"Action":"kms:*","Resource":"*"}]}`

// TestPolicyLockoutCheck checks AWS's policy lockout safety check: a policy
// that would stop the caller changing it again is refused unless the caller
// bypasses the check, and then it does lock the caller out.
func TestPolicyLockoutCheck(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id := f.createKey(t, nil)
	put := func(c ks.Caller, text string, bypass bool) error {
		_, err := f.svc.PutKeyPolicy(ctx, c, &ks.PutKeyPolicyInput{KeyId: id, Policy: text, BypassPolicyLockoutSafetyCheck: bypass})
		return err
	}
	tests := []struct {
		name string
		do   func() error
		code ks.Code
	}{
		{"locks the caller out", func() error { return put(alice, bobOnly, false) }, ks.CodeMalformedPolicy},
		{"not JSON", func() error { return put(alice, "{", false) }, ks.CodeMalformedPolicy},
		{"empty", func() error { return put(alice, "", false) }, ks.CodeValidation},
		{"too large", func() error { return put(alice, `{"x":"`+strings.Repeat("a", policy.MaxSize)+`"}`, false) }, ks.CodeLimitExceeded},
		{"policy name other than default", func() error {
			_, err := f.svc.PutKeyPolicy(ctx, alice, &ks.PutKeyPolicyInput{KeyId: id, PolicyName: "mine", Policy: bobOnly})
			return err
		}, ks.CodeValidation},
		{"unauthorized caller", func() error { return put(bob, bobOnly, false) }, ks.CodeAccessDenied},
		{"bypassing the check", func() error { return put(alice, bobOnly, true) }, ""},
		{"alice is locked out", func() error {
			_, err := f.svc.DescribeKey(ctx, alice, &ks.KeyIDInput{KeyId: id})
			return err
		}, ks.CodeAccessDenied},
		{"bob is let in", func() error {
			_, err := f.svc.DescribeKey(ctx, bob, &ks.KeyIDInput{KeyId: id})
			return err
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := codeOf(tt.do()); got != tt.code {
				t.Fatalf("code %q, want %q", got, tt.code)
			}
		})
	}
	if got := f.key(t, id).Policy; got != bobOnly {
		t.Errorf("the key's policy is %s, want bob's", got)
	}
	out, err := f.svc.GetKeyPolicy(ctx, bob, &ks.GetKeyPolicyInput{KeyId: id})
	if err != nil || out.Policy != bobOnly || out.PolicyName != "default" {
		t.Errorf("GetKeyPolicy: %+v, %v", out, err)
	}
}
