package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	wrapping "github.com/hashicorp/go-kms-wrapping/v2"
	"github.com/hashicorp/go-kms-wrapping/wrappers/awskms/v2"

	"github.com/keyledger/keyledger/crypto/ciphertext"
)

// TestVaultAutoUnsealWrapper drives keyledger with the library Vault's
// (and OpenBao's) awskms seal uses, go-kms-wrapping's awskms wrapper (on
// aws-sdk-go v1, a second SDK): the seal wraps Vault's root key, a new
// wrapper (Vault restarting) unwraps it; a disabled key stops the unseal
// and enabling it lets it through again; after a rotation the old blob
// still opens and new blobs use the new key material.
func TestVaultAutoUnsealWrapper(t *testing.T) {
	ctx := context.Background()
	in := start(t)
	key := in.createKey("vault seal")
	if _, err := in.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/vault-unseal"), TargetKeyId: &key}); err != nil {
		t.Fatal(err)
	}
	admin := testCredentials["admin"]
	newWrapper := func(keyID string) *awskms.Wrapper {
		t.Helper()
		w := awskms.NewWrapper()
		// As Vault's seal "awskms" { region, endpoint, kms_key_id, access_key, secret_key } stanza sets it.
		if _, err := w.SetConfig(ctx, wrapping.WithKeyId(keyID), awskms.WithDisallowEnvVars(true), awskms.WithRegion(testRegion),
			awskms.WithEndpoint(in.endpoint), awskms.WithAccessKey(admin[0]), awskms.WithSecretKey(admin[1])); err != nil {
			t.Fatalf("SetConfig: %v", err)
		}
		return w
	}
	rootKey := make([]byte, 32) // what Vault's seal wraps: its root key
	rand.Read(rootKey)

	w := newWrapper("alias/vault-unseal")
	blob, err := w.Encrypt(ctx, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := w.KeyId(ctx); !strings.HasSuffix(id, key) {
		t.Fatalf("the wrapper records key %q, want the key behind the alias", id)
	}
	// Vault restarts: a new wrapper opens the stored blob.
	if got, err := newWrapper("alias/vault-unseal").Decrypt(ctx, blob); err != nil || !bytes.Equal(got, rootKey) {
		t.Fatalf("unseal after restart: %v", err)
	}

	// A disabled key: the unseal fails, and works again once enabled.
	if _, err := in.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: &key}); err != nil {
		t.Fatal(err)
	}
	if _, err := newWrapper(key).Decrypt(ctx, blob); err == nil || !strings.Contains(err.Error(), "DisabledException") {
		t.Fatalf("unseal with the key disabled: %v", err)
	}
	if _, err := in.kms.EnableKey(ctx, &kms.EnableKeyInput{KeyId: &key}); err != nil {
		t.Fatal(err)
	}
	if got, err := w.Decrypt(ctx, blob); err != nil || !bytes.Equal(got, rootKey) {
		t.Fatalf("unseal once enabled again: %v", err)
	}

	// Rotation: the old blob still opens; a new one is under new material.
	if _, err := in.kms.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: &key}); err != nil {
		t.Fatal(err)
	}
	rewrapped, err := w.Encrypt(ctx, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]*wrapping.BlobInfo{"before rotation": blob, "after rotation": rewrapped} {
		if got, err := newWrapper(key).Decrypt(ctx, b); err != nil || !bytes.Equal(got, rootKey) {
			t.Fatalf("the blob made %s: %v", name, err)
		}
	}
	before, err1 := ciphertext.ParseHeader(blob.KeyInfo.WrappedKey)
	after, err2 := ciphertext.ParseHeader(rewrapped.KeyInfo.WrappedKey)
	if err1 != nil || err2 != nil || before.MaterialID == after.MaterialID || before.KeyID != key || after.KeyID != key {
		t.Fatalf("material before %s, after %s (%v %v)", before.MaterialID, after.MaterialID, err1, err2)
	}
}
