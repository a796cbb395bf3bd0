package tests

import (
	"bytes"
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

func TestEncryptDecryptAddressing(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	id := in.createKey("addr")
	arn := "arn:aws:kms:us-east-1:111122223333:key/" + id
	if _, err := in.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/app"), TargetKeyId: &id}); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{id, arn, "alias/app", "arn:aws:kms:us-east-1:111122223333:alias/app"} {
		t.Run(ref, func(t *testing.T) {
			enc, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(ref), Plaintext: []byte("payload")})
			if err != nil {
				t.Fatal(err)
			}
			if *enc.KeyId != arn {
				t.Fatalf("KeyId %s", *enc.KeyId)
			}
			// Decrypt needs no KeyId for symmetric ciphertext, and accepts the same refs.
			for _, dref := range []*string{nil, aws.String(ref)} {
				dec, err := in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, KeyId: dref})
				if err != nil || string(dec.Plaintext) != "payload" || dec.EncryptionAlgorithm != types.EncryptionAlgorithmSpecSymmetricDefault {
					t.Fatalf("decrypt: %+v %v", dec, err)
				}
			}
		})
	}
	// Management operations take key ids and ARNs, not aliases.
	_, err := in.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String("alias/app")})
	wantCode(t, err, "NotFoundException")
	_, err = in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("alias/missing"), Plaintext: []byte("x")})
	wantCode(t, err, "NotFoundException")
	_, err = in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("arn:aws:kms:us-east-1:999999999999:key/" + id), Plaintext: []byte("x")})
	wantCode(t, err, "NotFoundException")
	_, err = in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("00000000-0000-4000-8000-000000000000"), Plaintext: []byte("x")})
	wantCode(t, err, "NotFoundException")
}

func TestEncryptionContextAndTampering(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	id := in.createKey("ctx")
	other := in.createKey("other")
	ec := map[string]string{"tenant": "acme", "purpose": "invoice"}
	enc, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &id, Plaintext: []byte("secret invoice"), EncryptionContext: ec})
	if err != nil {
		t.Fatal(err)
	}
	dec, err := in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob,
		EncryptionContext: map[string]string{"purpose": "invoice", "tenant": "acme"}})
	if err != nil || string(dec.Plaintext) != "secret invoice" {
		t.Fatalf("decrypt with same context: %v", err)
	}
	for name, bad := range map[string]map[string]string{
		"none":    nil,
		"subset":  {"tenant": "acme"},
		"changed": {"tenant": "evil", "purpose": "invoice"},
		"extra":   {"tenant": "acme", "purpose": "invoice", "x": "y"},
	} {
		_, err := in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: bad})
		if err == nil {
			t.Fatalf("context %s decrypted", name)
		}
		wantCode(t, err, "InvalidCiphertextException")
	}
	// Every single flipped bit is refused with the same error.
	for _, i := range []int{0, 5, 20, 49, 60, len(enc.CiphertextBlob) - 1} {
		blob := bytes.Clone(enc.CiphertextBlob)
		blob[i] ^= 0x01
		_, err := in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob, EncryptionContext: ec})
		if err == nil {
			t.Fatalf("tampered byte %d decrypted", i)
		}
	}
	_, err = in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: []byte("not a ciphertext at all, but long enough to parse maybe..................................")})
	wantCode(t, err, "InvalidCiphertextException")
	_, err = in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ec, KeyId: &other})
	wantCode(t, err, "IncorrectKeyException")
	_, err = in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ec,
		EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256})
	wantCode(t, err, "InvalidKeyUsageException")
}

func TestDataKeys(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	id := in.createKey("dk")
	ec := map[string]string{"file": "a.txt"}
	for _, tc := range []struct {
		name string
		in   kms.GenerateDataKeyInput
		n    int
	}{
		{"AES_256", kms.GenerateDataKeyInput{KeySpec: types.DataKeySpecAes256}, 32},
		{"AES_128", kms.GenerateDataKeyInput{KeySpec: types.DataKeySpecAes128}, 16},
		{"bytes-1", kms.GenerateDataKeyInput{NumberOfBytes: aws.Int32(1)}, 1},
		{"bytes-1024", kms.GenerateDataKeyInput{NumberOfBytes: aws.Int32(1024)}, 1024},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.in
			req.KeyId, req.EncryptionContext = &id, ec
			out, err := in.kms.GenerateDataKey(ctx, &req)
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Plaintext) != tc.n || *out.KeyMaterialId == "" {
				t.Fatalf("got %d bytes", len(out.Plaintext))
			}
			dec, err := in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: out.CiphertextBlob, EncryptionContext: ec})
			if err != nil || !bytes.Equal(dec.Plaintext, out.Plaintext) {
				t.Fatalf("data key does not decrypt to itself: %v", err)
			}
		})
	}
	np, err := in.kms.GenerateDataKeyWithoutPlaintext(ctx, &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: &id, KeySpec: types.DataKeySpecAes256})
	if err != nil {
		t.Fatal(err)
	}
	dec, err := in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: np.CiphertextBlob})
	if err != nil || len(dec.Plaintext) != 32 {
		t.Fatalf("without-plaintext data key: %v", err)
	}
	a, _ := in.kms.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: &id, KeySpec: types.DataKeySpecAes256})
	b, _ := in.kms.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: &id, KeySpec: types.DataKeySpecAes256})
	if bytes.Equal(a.Plaintext, b.Plaintext) {
		t.Fatal("two data keys are equal")
	}
}

func TestReEncrypt(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	src, dst := in.createKey("src"), in.createKey("dst")
	enc, _ := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &src, Plaintext: []byte("move me"), EncryptionContext: map[string]string{"a": "1"}})
	re, err := in.kms.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: enc.CiphertextBlob, DestinationKeyId: &dst,
		SourceEncryptionContext: map[string]string{"a": "1"}, DestinationEncryptionContext: map[string]string{"b": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	if *re.SourceKeyId != "arn:aws:kms:us-east-1:111122223333:key/"+src || *re.KeyId != "arn:aws:kms:us-east-1:111122223333:key/"+dst ||
		*re.SourceKeyMaterialId == "" || *re.DestinationKeyMaterialId == "" {
		t.Fatalf("ReEncrypt answered %+v", re)
	}
	dec, err := in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: re.CiphertextBlob, EncryptionContext: map[string]string{"b": "2"}})
	if err != nil || string(dec.Plaintext) != "move me" || *dec.KeyId != *re.KeyId {
		t.Fatalf("re-encrypted blob: %v", err)
	}
	_, err = in.kms.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: enc.CiphertextBlob, DestinationKeyId: &dst})
	wantCode(t, err, "InvalidCiphertextException")
	in.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: &dst})
	_, err = in.kms.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: enc.CiphertextBlob, DestinationKeyId: &dst,
		SourceEncryptionContext: map[string]string{"a": "1"}})
	wantCode(t, err, "DisabledException")
}

func TestGenerateRandom(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	for _, n := range []int32{1, 32, 1024} {
		out, err := in.kms.GenerateRandom(ctx, &kms.GenerateRandomInput{NumberOfBytes: aws.Int32(n)})
		if err != nil || len(out.Plaintext) != int(n) {
			t.Fatalf("GenerateRandom(%d): %d bytes, %v", n, len(out.Plaintext), err)
		}
	}
	a, _ := in.kms.GenerateRandom(ctx, &kms.GenerateRandomInput{NumberOfBytes: aws.Int32(32)})
	b, _ := in.kms.GenerateRandom(ctx, &kms.GenerateRandomInput{NumberOfBytes: aws.Int32(32)})
	if bytes.Equal(a.Plaintext, b.Plaintext) {
		t.Fatal("GenerateRandom repeated itself")
	}
}

func TestDryRun(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	id := in.createKey("dry")
	_, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &id, Plaintext: []byte("x"), DryRun: aws.Bool(true)})
	wantCode(t, err, "DryRunOperationException")
	_, err = in.kms.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: &id, KeySpec: types.DataKeySpecAes256, DryRun: aws.Bool(true)})
	wantCode(t, err, "DryRunOperationException")
}
