package keyservice_test

import (
	"context"
	"testing"

	ks "github.com/keyledger/keyledger/gateway/keyservice"
)

// TestAliases creates, uses, repoints and deletes an alias, checking each
// refusal's AWS code on the way.
func TestAliases(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	first := f.createKey(t, nil)
	second := f.createKey(t, nil)
	mac := f.createKey(t, &ks.CreateKeyInput{KeySpec: "HMAC_256", KeyUsage: "GENERATE_VERIFY_MAC"})
	const name = "alias/app"
	aliasARN := "arn:aws:kms:us-east-1:111122223333:" + name

	usesKey := func(t *testing.T, ref, want string) {
		t.Helper()
		out, err := f.svc.DescribeKey(ctx, alice, &ks.KeyIDInput{KeyId: ref})
		if err != nil {
			t.Fatalf("DescribeKey %s: %v", ref, err)
		}
		if out.KeyMetadata.KeyId != want {
			t.Fatalf("%s names %s, want %s", ref, out.KeyMetadata.KeyId, want)
		}
	}
	create := func(c ks.Caller, alias, target string) func() error {
		return func() error {
			_, err := f.svc.CreateAlias(ctx, c, &ks.AliasInput{AliasName: alias, TargetKeyId: target})
			return err
		}
	}
	update := func(target string) func() error {
		return func() error {
			_, err := f.svc.UpdateAlias(ctx, alice, &ks.AliasInput{AliasName: name, TargetKeyId: target})
			return err
		}
	}
	steps := []struct {
		name string
		op   string
		do   func() error
		code ks.Code
	}{
		{"create", "CreateAlias", create(alice, name, first), ""},
		{"create again", "CreateAlias", create(alice, name, second), ks.CodeAlreadyExists},
		{"reserved prefix", "CreateAlias", create(alice, "alias/aws/s3", first), ks.CodeNotAuthorized},
		{"no prefix", "CreateAlias", create(alice, "app", first), ks.CodeValidation},
		{"bad character", "CreateAlias", create(alice, "alias/a b", first), ks.CodeValidation},
		{"colon", "CreateAlias", create(alice, "alias/my:alias", first), ks.CodeValidation},
		{"target by alias", "CreateAlias", create(alice, "alias/other", name), ks.CodeValidation},
		{"target by alias ARN", "CreateAlias", create(alice, "alias/other", aliasARN), ks.CodeValidation},
		{"repoint to an alias", "UpdateAlias", update(name), ks.CodeValidation},
		{"unauthorized", "CreateAlias", create(bob, "alias/bob", first), ks.CodeAccessDenied},
		{"repoint to a key of another type", "UpdateAlias", update(mac), ks.CodeValidation},
		{"repoint", "UpdateAlias", update(second), ""},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if got := codeOf(st.do()); got != st.code {
				t.Fatalf("code %q, want %q", got, st.code)
			}
			f.checkRecorded(t, st.op, st.code)
		})
	}
	usesKey(t, name, second)
	usesKey(t, aliasARN, second)
	f.encrypt(t, alice, name, []byte("x"), nil)

	if _, err := f.svc.DeleteAlias(ctx, alice, &ks.DeleteAliasInput{AliasName: name}); err != nil {
		t.Fatal(err)
	}
	_, err := f.svc.Encrypt(ctx, alice, &ks.EncryptInput{KeyId: name, Plaintext: []byte("x")})
	if got := codeOf(err); got != ks.CodeNotFound {
		t.Errorf("Encrypt under a deleted alias: %q, want %q", got, ks.CodeNotFound)
	}
	if _, err := f.svc.DeleteAlias(ctx, alice, &ks.DeleteAliasInput{AliasName: name}); codeOf(err) != ks.CodeNotFound {
		t.Errorf("DeleteAlias again: %v, want %q", err, ks.CodeNotFound)
	}
	usesKey(t, second, second) // the key outlives its alias

	// Management operations take a key id or ARN only, never an alias.
	if _, err := f.svc.CreateAlias(ctx, alice, &ks.AliasInput{AliasName: name, TargetKeyId: first}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.DisableKey(ctx, alice, &ks.KeyIDInput{KeyId: name}); codeOf(err) != ks.CodeNotFound {
		t.Errorf("DisableKey by alias: %v, want %q", err, ks.CodeNotFound)
	}
}
