package keyservice_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	ks "github.com/keyledger/keyledger/gateway/keyservice"
)

func TestEncryptDecryptRoundTrip(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id := f.createKey(t, nil)
	encCtx := map[string]string{"app": "billing"}
	pt := []byte("attack at dawn")
	blob := f.encrypt(t, alice, id, pt, encCtx)
	if bytes.Contains(blob, pt) {
		t.Fatal("the ciphertext contains the plaintext")
	}
	f.checkRecorded(t, "Encrypt", "")

	out, err := f.svc.Decrypt(ctx, alice, &ks.DecryptInput{CiphertextBlob: blob, EncryptionContext: encCtx})
	if err != nil {
		t.Fatal(err)
	}
	k := f.key(t, id)
	want := &ks.DecryptOutput{KeyId: "arn:aws:kms:us-east-1:111122223333:key/" + id, Plaintext: pt,
		EncryptionAlgorithm: "SYMMETRIC_DEFAULT", KeyMaterialId: k.CurrentMaterial().ID}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Fatalf("Decrypt (-want +got):\n%s", diff)
	}
	f.checkRecorded(t, "Decrypt", "")
	for _, ev := range []string{string(f.ledger.records()[1].Raw), string(f.ledger.records()[2].Raw)} {
		if strings.Contains(ev, string(pt)) {
			t.Errorf("an event holds the plaintext: %s", ev)
		}
	}

	// A restarted service has no material cached: it reads the wrapped
	// material from the store and checks it against the ledger.
	f.restart()
	if out, err := f.svc.Decrypt(ctx, alice, &ks.DecryptInput{CiphertextBlob: blob, EncryptionContext: encCtx}); err != nil || !bytes.Equal(out.Plaintext, pt) {
		t.Fatalf("Decrypt after a restart: %v", err)
	}
}

// TestDecryptRefusals checks that every problem with a blob is the same
// InvalidCiphertextException, and the other refusals their AWS codes.
func TestDecryptRefusals(t *testing.T) {
	f := newFixture(t)
	id := f.createKey(t, nil)
	other := f.createKey(t, nil)
	encCtx := map[string]string{"app": "billing"}
	blob := f.encrypt(t, alice, id, []byte("secret"), encCtx)
	flip := func(i int) []byte {
		b := bytes.Clone(blob)
		b[i] ^= 1
		return b
	}
	tests := []struct {
		name string
		c    ks.Caller
		in   ks.DecryptInput
		code ks.Code
	}{
		{"flipped last byte", alice, ks.DecryptInput{CiphertextBlob: flip(len(blob) - 1), EncryptionContext: encCtx}, ks.CodeInvalidCiphertext},
		{"flipped middle byte", alice, ks.DecryptInput{CiphertextBlob: flip(len(blob) / 2), EncryptionContext: encCtx}, ks.CodeInvalidCiphertext},
		{"flipped first byte", alice, ks.DecryptInput{CiphertextBlob: flip(0), EncryptionContext: encCtx}, ks.CodeInvalidCiphertext},
		{"truncated", alice, ks.DecryptInput{CiphertextBlob: blob[:len(blob)-1], EncryptionContext: encCtx}, ks.CodeInvalidCiphertext},
		{"garbage", alice, ks.DecryptInput{CiphertextBlob: []byte("not a ciphertext")}, ks.CodeInvalidCiphertext},
		{"wrong encryption context", alice, ks.DecryptInput{CiphertextBlob: blob, EncryptionContext: map[string]string{"app": "payroll"}}, ks.CodeInvalidCiphertext},
		{"no encryption context", alice, ks.DecryptInput{CiphertextBlob: blob}, ks.CodeInvalidCiphertext},
		{"names another key", alice, ks.DecryptInput{CiphertextBlob: blob, EncryptionContext: encCtx, KeyId: other}, ks.CodeIncorrectKey},
		{"empty blob", alice, ks.DecryptInput{CiphertextBlob: []byte{}}, ks.CodeValidation},
		{"no blob", alice, ks.DecryptInput{}, ks.CodeValidation},
		{"unauthorized caller", bob, ks.DecryptInput{CiphertextBlob: blob, EncryptionContext: encCtx}, ks.CodeAccessDenied},
		{"forged grant token", alice, ks.DecryptInput{CiphertextBlob: blob, EncryptionContext: encCtx, GrantTokens: []string{"kl1.x.y"}}, ks.CodeInvalidGrantToken},
		{"dry run", alice, ks.DecryptInput{CiphertextBlob: blob, EncryptionContext: encCtx, DryRun: true}, ks.CodeDryRun},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := f.svc.Decrypt(context.Background(), tt.c, &tt.in)
			if got := codeOf(err); got != tt.code {
				t.Fatalf("error %v (code %q), want code %q", err, got, tt.code)
			}
			if out != nil {
				t.Errorf("a refused Decrypt answered %+v", out)
			}
			f.checkRecorded(t, "Decrypt", tt.code)
		})
	}
}

// TestCryptoRefusals checks the AWS code for using a key it cannot be used
// for, or cannot be used now.
func TestCryptoRefusals(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	sym := f.createKey(t, nil)
	mac := f.createKey(t, &ks.CreateKeyInput{KeySpec: "HMAC_256", KeyUsage: "GENERATE_VERIFY_MAC"})
	sig := f.createKey(t, &ks.CreateKeyInput{KeySpec: "ECC_NIST_P256", KeyUsage: "SIGN_VERIFY"})
	disabled := f.createKey(t, nil)
	if _, err := f.svc.DisableKey(ctx, alice, &ks.KeyIDInput{KeyId: disabled}); err != nil {
		t.Fatal(err)
	}
	pending := f.createKey(t, nil)
	if _, err := f.svc.ScheduleKeyDeletion(ctx, alice, &ks.ScheduleKeyDeletionInput{KeyId: pending}); err != nil {
		t.Fatal(err)
	}
	external := f.createKey(t, &ks.CreateKeyInput{Origin: "EXTERNAL"})
	encrypt := func(keyID string) func() error {
		return func() error {
			_, err := f.svc.Encrypt(ctx, alice, &ks.EncryptInput{KeyId: keyID, Plaintext: []byte("x")})
			return err
		}
	}
	tests := []struct {
		name string
		op   string
		do   func() error
		code ks.Code
	}{
		{"encrypt with an HMAC key", "Encrypt", encrypt(mac), ks.CodeInvalidKeyUsage},
		{"encrypt with a signing key", "Encrypt", encrypt(sig), ks.CodeInvalidKeyUsage},
		{"encrypt with a disabled key", "Encrypt", encrypt(disabled), ks.CodeDisabled},
		{"encrypt with a key pending deletion", "Encrypt", encrypt(pending), ks.CodeInvalidState},
		{"encrypt with a key pending import", "Encrypt", encrypt(external), ks.CodeInvalidState},
		{"encrypt with no such key", "Encrypt", encrypt("0b3c7a9e-1d2f-4e5a-8b6c-7d8e9f0a1b2c"), ks.CodeNotFound},
		{"encrypt with a malformed key id", "Encrypt", encrypt("nope"), ks.CodeNotFound},
		{"encrypt with another region's key", "Encrypt", encrypt("arn:aws:kms:eu-west-1:111122223333:key/" + sym), ks.CodeNotFound},
		{"encrypt with no key id", "Encrypt", encrypt(""), ks.CodeValidation},
		{"encrypt too much", "Encrypt", func() error {
			_, err := f.svc.Encrypt(ctx, alice, &ks.EncryptInput{KeyId: sym, Plaintext: make([]byte, 4097)})
			return err
		}, ks.CodeValidation},
		{"encrypt with an unknown algorithm", "Encrypt", func() error {
			_, err := f.svc.Encrypt(ctx, alice, &ks.EncryptInput{KeyId: sym, Plaintext: []byte("x"), EncryptionAlgorithm: "ROT13"})
			return err
		}, ks.CodeValidation},
		{"encrypt with an RSA algorithm on a symmetric key", "Encrypt", func() error {
			_, err := f.svc.Encrypt(ctx, alice, &ks.EncryptInput{KeyId: sym, Plaintext: []byte("x"), EncryptionAlgorithm: "RSAES_OAEP_SHA_256"})
			return err
		}, ks.CodeInvalidKeyUsage},
		{"encrypt as an unauthorized caller", "Encrypt", func() error {
			_, err := f.svc.Encrypt(ctx, bob, &ks.EncryptInput{KeyId: sym, Plaintext: []byte("x")})
			return err
		}, ks.CodeAccessDenied},
		{"sign with a symmetric key", "Sign", func() error {
			_, err := f.svc.Sign(ctx, alice, &ks.SignInput{KeyId: sym, Message: []byte("m"), SigningAlgorithm: "ECDSA_SHA_256"})
			return err
		}, ks.CodeInvalidKeyUsage},
		{"MAC with a symmetric encryption key", "GenerateMac", func() error {
			_, err := f.svc.GenerateMac(ctx, alice, &ks.MacInput{KeyId: sym, Message: []byte("m"), MacAlgorithm: "HMAC_SHA_256"})
			return err
		}, ks.CodeInvalidKeyUsage},
		{"MAC with the wrong algorithm for the key", "GenerateMac", func() error {
			_, err := f.svc.GenerateMac(ctx, alice, &ks.MacInput{KeyId: mac, Message: []byte("m"), MacAlgorithm: "HMAC_SHA_512"})
			return err
		}, ks.CodeInvalidKeyUsage},
		{"data key with an HMAC key", "GenerateDataKey", func() error {
			_, err := f.svc.GenerateDataKey(ctx, alice, &ks.GenerateDataKeyInput{KeyId: mac, KeySpec: "AES_256"})
			return err
		}, ks.CodeInvalidKeyUsage},
		{"data key with both spec and size", "GenerateDataKey", func() error {
			_, err := f.svc.GenerateDataKey(ctx, alice, &ks.GenerateDataKeyInput{KeyId: sym, KeySpec: "AES_256", NumberOfBytes: ptr(int32(32))})
			return err
		}, ks.CodeValidation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			if got := codeOf(err); got != tt.code {
				t.Fatalf("error %v (code %q), want code %q", err, got, tt.code)
			}
			f.checkRecorded(t, tt.op, tt.code)
		})
	}
}

// TestMacAndSignRoundTrips checks the other symmetric and asymmetric uses,
// and that a wrong MAC or signature is the AWS "invalid" answer.
func TestMacAndSignRoundTrips(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	mac := f.createKey(t, &ks.CreateKeyInput{KeySpec: "HMAC_256", KeyUsage: "GENERATE_VERIFY_MAC"})
	msg := []byte("message")
	g, err := f.svc.GenerateMac(ctx, alice, &ks.MacInput{KeyId: mac, Message: msg, MacAlgorithm: "HMAC_SHA_256"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.VerifyMac(ctx, alice, &ks.MacInput{KeyId: mac, Message: msg, MacAlgorithm: "HMAC_SHA_256", Mac: g.Mac}); err != nil {
		t.Fatalf("VerifyMac of a good MAC: %v", err)
	}
	_, err = f.svc.VerifyMac(ctx, alice, &ks.MacInput{KeyId: mac, Message: []byte("other"), MacAlgorithm: "HMAC_SHA_256", Mac: g.Mac})
	if got := codeOf(err); got != ks.CodeInvalidMac {
		t.Errorf("VerifyMac of another message: %q, want %q", got, ks.CodeInvalidMac)
	}

	sig := f.createKey(t, &ks.CreateKeyInput{KeySpec: "ECC_NIST_P256", KeyUsage: "SIGN_VERIFY"})
	s, err := f.svc.Sign(ctx, alice, &ks.SignInput{KeyId: sig, Message: msg, SigningAlgorithm: "ECDSA_SHA_256"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Verify(ctx, alice, &ks.VerifyInput{KeyId: sig, Message: msg, Signature: s.Signature, SigningAlgorithm: "ECDSA_SHA_256"}); err != nil {
		t.Fatalf("Verify of a good signature: %v", err)
	}
	_, err = f.svc.Verify(ctx, alice, &ks.VerifyInput{KeyId: sig, Message: []byte("other"), Signature: s.Signature, SigningAlgorithm: "ECDSA_SHA_256"})
	if got := codeOf(err); got != ks.CodeInvalidSignature {
		t.Errorf("Verify of another message: %q, want %q", got, ks.CodeInvalidSignature)
	}
}

// TestLedgerFailureRefuses checks that when the ledger cannot take an
// event the caller gets KMSInternalException and nothing: no ciphertext,
// no key, no state change.
func TestLedgerFailureRefuses(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id := f.createKey(t, nil)
	f.ledger.fail = errors.New("ledger down")
	before := f.state.Snapshot()

	enc, err := f.svc.Encrypt(ctx, alice, &ks.EncryptInput{KeyId: id, Plaintext: []byte("x")})
	if got := codeOf(err); got != ks.CodeInternal || enc != nil {
		t.Errorf("Encrypt: %+v, %q; want nothing and %q", enc, got, ks.CodeInternal)
	}
	created, err := f.svc.CreateKey(ctx, alice, &ks.CreateKeyInput{})
	if got := codeOf(err); got != ks.CodeInternal || created != nil {
		t.Errorf("CreateKey: %+v, %q; want nothing and %q", created, got, ks.CodeInternal)
	}
	if _, err := f.svc.DisableKey(ctx, alice, &ks.KeyIDInput{KeyId: id}); codeOf(err) != ks.CodeInternal {
		t.Errorf("DisableKey: %v, want %q", err, ks.CodeInternal)
	}
	if err := f.svc.RunDue(ctx); err != nil {
		t.Errorf("RunDue with nothing due: %v", err)
	}
	if diff := cmp.Diff(before, f.state.Snapshot()); diff != "" {
		t.Errorf("the state changed while the ledger was down (-before +after):\n%s", diff)
	}
}

// TestTamperedMaterialIsInternal checks that material whose stored bytes
// no longer match the ledger's commitment is never used.
func TestTamperedMaterialIsInternal(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id := f.createKey(t, nil)
	blob := f.encrypt(t, alice, id, []byte("x"), nil)
	k := f.key(t, id)
	f.mats.tamper(k.CurrentMaterial().ID)
	f.restart()
	if _, err := f.svc.Decrypt(ctx, alice, &ks.DecryptInput{CiphertextBlob: blob}); codeOf(err) != ks.CodeInternal {
		t.Fatalf("Decrypt under tampered material: %v, want %q", err, ks.CodeInternal)
	}
	f.checkRecorded(t, "Decrypt", ks.CodeInternal)
}
