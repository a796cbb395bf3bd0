package keyservice_test

import (
	"context"
	"testing"

	ks "github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/projections/policy"
)

// TestGrants lets bob, who has no policy of his own, use a key through a
// grant: only for the operations it names, only within its constraints,
// and only until it is retired or revoked.
func TestGrants(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id := f.createKey(t, nil)
	appCtx := map[string]string{"app": "billing"}
	grant, err := f.svc.CreateGrant(ctx, alice, &ks.CreateGrantInput{KeyId: id, GranteePrincipal: bob.PrincipalARN,
		RetiringPrincipal: alice.PrincipalARN, Operations: []string{"Encrypt", "Decrypt"},
		Constraints: &ks.GrantConstraints{EncryptionContextSubset: appCtx}})
	if err != nil {
		t.Fatal(err)
	}
	encrypt := func(c ks.Caller, encCtx map[string]string, tokens ...string) error {
		_, err := f.svc.Encrypt(ctx, c, &ks.EncryptInput{KeyId: id, Plaintext: []byte("x"), EncryptionContext: encCtx, GrantTokens: tokens})
		return err
	}
	tests := []struct {
		name string
		do   func() error
		code ks.Code
	}{
		{"encrypt within the constraint", func() error { return encrypt(bob, appCtx) }, ""},
		{"encrypt with more context", func() error {
			return encrypt(bob, map[string]string{"app": "billing", "env": "prod"})
		}, ""},
		{"encrypt with the grant token", func() error { return encrypt(bob, appCtx, grant.GrantToken) }, ""},
		{"encrypt outside the constraint", func() error { return encrypt(bob, map[string]string{"app": "payroll"}) }, ks.CodeAccessDenied},
		{"encrypt without context", func() error { return encrypt(bob, nil) }, ks.CodeAccessDenied},
		{"encrypt with a forged token", func() error { return encrypt(bob, appCtx, grant.GrantToken+"x") }, ks.CodeInvalidGrantToken},
		{"an operation the grant does not name", func() error {
			_, err := f.svc.GenerateDataKey(ctx, bob, &ks.GenerateDataKeyInput{KeyId: id, KeySpec: "AES_256", EncryptionContext: appCtx})
			return err
		}, ks.CodeAccessDenied},
		{"retire as the grantee, not allowed to", func() error {
			_, err := f.svc.RetireGrant(ctx, bob, &ks.RetireGrantInput{GrantToken: grant.GrantToken})
			return err
		}, ks.CodeAccessDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := codeOf(tt.do()); got != tt.code {
				t.Fatalf("code %q, want %q", got, tt.code)
			}
		})
	}

	if _, err := f.svc.RetireGrant(ctx, alice, &ks.RetireGrantInput{GrantToken: grant.GrantToken}); err != nil {
		t.Fatalf("RetireGrant as the retiring principal: %v", err)
	}
	if got := codeOf(encrypt(bob, appCtx)); got != ks.CodeAccessDenied {
		t.Errorf("Encrypt through a retired grant: %q, want %q", got, ks.CodeAccessDenied)
	}
	if got := codeOf(encrypt(alice, nil, grant.GrantToken)); got != ks.CodeInvalidGrantToken {
		t.Errorf("a retired grant's token: %q, want %q", got, ks.CodeInvalidGrantToken)
	}
	if k := f.key(t, id); len(k.Grants) != 0 {
		t.Errorf("%d grants left", len(k.Grants))
	}
}

func TestRevokeGrant(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id := f.createKey(t, nil)
	grant, err := f.svc.CreateGrant(ctx, alice, &ks.CreateGrantInput{KeyId: id, GranteePrincipal: bob.PrincipalARN,
		Operations: []string{"DescribeKey"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.DescribeKey(ctx, bob, &ks.KeyIDInput{KeyId: id}); err != nil {
		t.Fatalf("DescribeKey through the grant: %v", err)
	}
	if _, err := f.svc.RevokeGrant(ctx, bob, &ks.RevokeGrantInput{KeyId: id, GrantId: grant.GrantId}); codeOf(err) != ks.CodeAccessDenied {
		t.Errorf("RevokeGrant by the grantee: %v, want %q", err, ks.CodeAccessDenied)
	}
	if _, err := f.svc.RevokeGrant(ctx, alice, &ks.RevokeGrantInput{KeyId: id, GrantId: grant.GrantId}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.DescribeKey(ctx, bob, &ks.KeyIDInput{KeyId: id}); codeOf(err) != ks.CodeAccessDenied {
		t.Errorf("DescribeKey after the revoke: %v, want %q", err, ks.CodeAccessDenied)
	}
	if _, err := f.svc.RevokeGrant(ctx, alice, &ks.RevokeGrantInput{KeyId: id, GrantId: grant.GrantId}); codeOf(err) != ks.CodeNotFound {
		t.Errorf("RevokeGrant again: %v, want %q", err, ks.CodeNotFound)
	}
}

func TestCreateGrantRefusals(t *testing.T) {
	f := newFixture(t)
	id := f.createKey(t, nil)
	mac := f.createKey(t, &ks.CreateKeyInput{KeySpec: "HMAC_256", KeyUsage: "GENERATE_VERIFY_MAC"})
	tests := []struct {
		name string
		c    ks.Caller
		in   ks.CreateGrantInput
		code ks.Code
	}{
		{"no grantee", alice, ks.CreateGrantInput{KeyId: id, Operations: []string{"Encrypt"}}, ks.CodeValidation},
		{"grantee not an ARN", alice, ks.CreateGrantInput{KeyId: id, GranteePrincipal: "bob", Operations: []string{"Encrypt"}}, ks.CodeValidation},
		{"no operations", alice, ks.CreateGrantInput{KeyId: id, GranteePrincipal: bob.PrincipalARN}, ks.CodeValidation},
		{"unknown operation", alice, ks.CreateGrantInput{KeyId: id, GranteePrincipal: bob.PrincipalARN, Operations: []string{"Launch"}}, ks.CodeValidation},
		{"operation the key cannot do", alice, ks.CreateGrantInput{KeyId: mac, GranteePrincipal: bob.PrincipalARN, Operations: []string{"Encrypt"}}, ks.CodeValidation},
		{"constraint on an HMAC key", alice, ks.CreateGrantInput{KeyId: mac, GranteePrincipal: bob.PrincipalARN, Operations: []string{"GenerateMac"},
			Constraints: &ks.GrantConstraints{EncryptionContextEquals: map[string]string{"a": "b"}}}, ks.CodeValidation},
		{"no such key", alice, ks.CreateGrantInput{KeyId: "0b3c7a9e-1d2f-4e5a-8b6c-7d8e9f0a1b2c", GranteePrincipal: bob.PrincipalARN, Operations: []string{"Encrypt"}}, ks.CodeNotFound},
		{"unauthorized", bob, ks.CreateGrantInput{KeyId: id, GranteePrincipal: bob.PrincipalARN, Operations: []string{"Encrypt"}}, ks.CodeAccessDenied},
		{"dry run", alice, ks.CreateGrantInput{KeyId: id, GranteePrincipal: bob.PrincipalARN, Operations: []string{"Encrypt"}, DryRun: true}, ks.CodeDryRun},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.svc.CreateGrant(context.Background(), tt.c, &tt.in)
			if got := codeOf(err); got != tt.code {
				t.Fatalf("error %v (code %q), want code %q", err, got, tt.code)
			}
			f.checkRecorded(t, "CreateGrant", tt.code)
		})
	}
	for _, k := range f.state.Keys(account) {
		if len(k.Grants) != 0 {
			t.Errorf("refusals left %d grants on %s", len(k.Grants), k.ID)
		}
	}
}

// TestAccountRootGrant checks that a grant to the account root delegates to
// the account: bob (no identity policy) gets nothing from it, a user whose
// identity policy allows the operation on the key does.
func TestAccountRootGrant(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id := f.createKey(t, &ks.CreateKeyInput{Policy: ptr(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
		"Principal":{"AWS":"arn:aws:iam::` + account + `:user/alice"},"Action":"kms:*","Resource":"*"}]}`)})
	carol := ks.Caller{AccessKeyID: "AKIACAROL", PrincipalARN: "arn:aws:iam::" + account + ":user/carol", Account: account,
		Identity: []*policy.Document{mustParse(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Encrypt","Resource":"*"}]}`)}}
	encrypt := func(c ks.Caller) ks.Code {
		_, err := f.svc.Encrypt(ctx, c, &ks.EncryptInput{KeyId: id, Plaintext: []byte("x")})
		return codeOf(err)
	}
	// The key policy names alice only: carol's identity policy is not enough.
	if got := encrypt(carol); got != ks.CodeAccessDenied {
		t.Fatalf("carol before the grant: %q", got)
	}
	if _, err := f.svc.CreateGrant(ctx, alice, &ks.CreateGrantInput{KeyId: id, GranteePrincipal: "arn:aws:iam::" + account + ":root",
		Operations: []string{"Encrypt"}}); err != nil {
		t.Fatal(err)
	}
	if got := encrypt(bob); got != ks.CodeAccessDenied {
		t.Errorf("bob (no identity policy) through the account grant: %q, want %q", got, ks.CodeAccessDenied)
	}
	if got := encrypt(carol); got != "" {
		t.Errorf("carol (identity policy allows) through the account grant: %q", got)
	}
}

// TestListRetirableGrants lists a principal's retirable grants only for a
// principal of the caller's account.
func TestListRetirableGrants(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id := f.createKey(t, nil)
	if _, err := f.svc.CreateGrant(ctx, alice, &ks.CreateGrantInput{KeyId: id, GranteePrincipal: bob.PrincipalARN,
		RetiringPrincipal: bob.PrincipalARN, Operations: []string{"Encrypt"}}); err != nil {
		t.Fatal(err)
	}
	list := func(c ks.Caller, principal string) (*ks.ListGrantsOutput, error) {
		return f.svc.ListRetirableGrants(ctx, c, &ks.ListGrantsInput{RetiringPrincipal: principal})
	}
	if out, err := list(alice, bob.PrincipalARN); err != nil || len(out.Grants) != 1 {
		t.Fatalf("alice lists bob's: %+v %v", out, err)
	}
	other := alice
	other.Account, other.PrincipalARN = "444455556666", "arn:aws:iam::444455556666:user/eve"
	if _, err := list(other, bob.PrincipalARN); codeOf(err) != ks.CodeAccessDenied {
		t.Errorf("another account's admin lists bob's: %v", err)
	}
	if _, err := list(bob, bob.PrincipalARN); codeOf(err) != ks.CodeAccessDenied {
		t.Errorf("bob without kms:ListRetirableGrants: %v", err)
	}
	if _, err := list(alice, ""); codeOf(err) != ks.CodeValidation {
		t.Errorf("no principal: %v", err)
	}
}
