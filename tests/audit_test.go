package tests

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/ledger/event"
)

// TestRefusalsAreRecorded checks that refused requests that reach a key are
// in the ledger with the caller, the key and the AWS error.
func TestRefusalsAreRecorded(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	k := in.createKey("refusals")
	in.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: &k})
	_, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("no")})
	wantCode(t, err, "DisabledException")
	in.kms.EnableKey(ctx, &kms.EnableKeyInput{KeyId: &k})
	enc, _ := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("yes")})
	blob := bytes.Clone(enc.CiphertextBlob)
	blob[len(blob)-1] ^= 1
	_, err = in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob})
	wantCode(t, err, "InvalidCiphertextException")
	in.kms.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &k})
	_, err = in.kms.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: &k, KeySpec: types.DataKeySpecAes256})
	wantCode(t, err, "KMSInvalidStateException")

	want := map[string]string{"Encrypt": "DisabledException", "Decrypt": "InvalidCiphertextException", "GenerateDataKey": "KMSInvalidStateException"}
	found := map[string]bool{}
	for _, r := range in.records() {
		e := r.Event
		if !e.Refused() {
			continue
		}
		if code, ok := want[e.Operation]; ok && e.Error.Code == code && e.KeyID == k {
			if e.Actor == nil || e.Actor.AccessKeyID != testCredentials["admin"][0] || e.Actor.PrincipalARN != "arn:aws:iam::111122223333:user/admin" || e.Actor.RequestID == "" || e.Actor.SourceIP == "" {
				t.Fatalf("refusal without its caller: %+v", e.Actor)
			}
			found[e.Operation] = true
		}
	}
	if len(found) != len(want) {
		t.Fatalf("refusals recorded: %v, want %v", found, want)
	}
	// Successful uses are recorded with the material that served them.
	var encrypts int
	for _, r := range in.records() {
		if c, ok := r.Event.Body.(*event.APICall); ok && r.Event.Operation == "Encrypt" && !r.Event.Refused() {
			if c.MaterialID == "" {
				t.Fatal("Encrypt event without its key material id")
			}
			encrypts++
		}
	}
	if encrypts != 1 {
		t.Fatalf("%d successful Encrypt events, want 1", encrypts)
	}
}

// TestNoSecretAnywhere drives traffic carrying recognisable secrets, then
// scans logs, every ledger event, every error message and every file in the
// data directory for them in raw, base64 and hex form.
func TestNoSecretAnywhere(t *testing.T) {
	rootBytes := []byte("ROOTKEY-0123456789abcdef-ROOTKEY")
	in := start(t)
	var err error
	if in.root, err = rootkey.New(rootBytes); err != nil {
		t.Fatal(err)
	}
	in.restart() // now running under the known root key
	ctx := context.Background()
	k := in.createKey("secrets")
	var secrets [][]byte
	secrets = append(secrets, rootBytes)
	for _, c := range testCredentials {
		secrets = append(secrets, []byte(c[1])) // principals' secret access keys
	}
	var errorTexts []string
	note := func(err error) {
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) {
			errorTexts = append(errorTexts, apiErr.ErrorMessage())
		}
	}
	for i := 0; i < 5; i++ {
		pt := []byte("PLAINTEXT-SECRET-" + strings.Repeat("x", i) + "-END")
		secrets = append(secrets, pt)
		enc, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: pt, EncryptionContext: map[string]string{"n": "1"}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob}) // wrong context
		note(err)
		dk, err := in.kms.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: &k, KeySpec: types.DataKeySpecAes256})
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, dk.Plaintext)
		r, _ := in.kms.GenerateRandom(ctx, &kms.GenerateRandomInput{NumberOfBytes: aws.Int32(32)})
		secrets = append(secrets, r.Plaintext)
	}
	// Bearer credentials: grant tokens and import tokens.
	g, err := in.kms.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: &k, GranteePrincipal: aws.String("arn:aws:iam::111122223333:user/alice"),
		Operations: []types.GrantOperation{types.GrantOperationEncrypt}})
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, []byte(*g.GrantToken))
	ext, _ := in.kms.CreateKey(ctx, &kms.CreateKeyInput{Origin: types.OriginTypeExternal})
	params, err := in.kms.GetParametersForImport(ctx, &kms.GetParametersForImportInput{KeyId: ext.KeyMetadata.KeyId,
		WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256, WrappingKeySpec: types.WrappingKeySpecRsa2048})
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, params.ImportToken)
	// Oversized and refused plaintexts must not be echoed either.
	big := []byte("PLAINTEXT-SECRET-BIG" + strings.Repeat("y", 4100))
	secrets = append(secrets, big[:32])
	_, err = in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: big})
	note(err)
	in.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: &k})
	_, err = in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("PLAINTEXT-SECRET-DISABLED")})
	note(err)
	secrets = append(secrets, []byte("PLAINTEXT-SECRET-DISABLED"))

	var events bytes.Buffer
	for _, r := range in.records() {
		events.Write(r.Raw)
	}
	in.down() // flush the data directory
	haystacks := map[string][]byte{"logs": []byte(in.logs.String()), "events": events.Bytes(),
		"errors": []byte(strings.Join(errorTexts, "\n"))}
	filepath.WalkDir(in.dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(path)
			haystacks[path] = b
		}
		return nil
	})
	if len(errorTexts) < 3 || events.Len() == 0 || len(in.logs.String()) == 0 {
		t.Fatalf("scan has too little to look at: %d errors, %d event bytes, %d log bytes", len(errorTexts), events.Len(), len(in.logs.String()))
	}
	// The files are readable as stored: the key id, which is not secret, is there.
	keyOnDisk := false
	for where, hay := range haystacks {
		if strings.HasPrefix(where, in.dir) && bytes.Contains(hay, []byte(k)) {
			keyOnDisk = true
		}
	}
	if !keyOnDisk {
		t.Fatal("the data directory scan cannot see ledger contents")
	}
	for _, s := range secrets {
		forms := [][]byte{s, []byte(base64.StdEncoding.EncodeToString(s)), []byte(hex.EncodeToString(s))}
		for where, hay := range haystacks {
			for _, f := range forms {
				if bytes.Contains(hay, f) {
					t.Fatalf("secret %q found in %s", s, where)
				}
			}
		}
	}
}
