package tests

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/keyledger/keyledger/crypto/ciphertext"
	"github.com/keyledger/keyledger/crypto/keywrap"
	"github.com/keyledger/keyledger/crypto/secret"
)

// wrapForImport wraps material for the given parameters the way a user
// would: RSAES-OAEP with the standard library, or OAEP of a fresh AES key
// followed by RFC 5649 key wrap.
func wrapForImport(t *testing.T, params *kms.GetParametersForImportOutput, alg types.AlgorithmSpec, material []byte) []byte {
	t.Helper()
	pub, err := x509.ParsePKIXPublicKey(params.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rsaPub := pub.(*rsa.PublicKey)
	switch alg {
	case types.AlgorithmSpecRsaesOaepSha256:
		out, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, rsaPub, material, nil)
		if err != nil {
			t.Fatal(err)
		}
		return out
	case types.AlgorithmSpecRsaAesKeyWrapSha256:
		aesKey := make([]byte, 32)
		rand.Read(aesKey)
		head, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, rsaPub, aesKey, nil)
		if err != nil {
			t.Fatal(err)
		}
		tail, err := keywrap.Wrap(aesKey, material)
		if err != nil {
			t.Fatal(err)
		}
		return append(head, tail...)
	}
	t.Fatalf("unhandled %s", alg)
	return nil
}

func importParams(t *testing.T, in *instance, id string, alg types.AlgorithmSpec) *kms.GetParametersForImportOutput {
	t.Helper()
	p, err := in.kms.GetParametersForImport(context.Background(), &kms.GetParametersForImportInput{KeyId: &id,
		WrappingAlgorithm: alg, WrappingKeySpec: types.WrappingKeySpecRsa2048})
	if err != nil {
		t.Fatal(err)
	}
	if !p.ParametersValidTo.Equal(in.clock.Now().Add(24 * time.Hour)) {
		t.Fatalf("ParametersValidTo %v", p.ParametersValidTo)
	}
	return p
}

func TestImportSymmetricMaterial(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	created, err := in.kms.CreateKey(ctx, &kms.CreateKeyInput{Origin: types.OriginTypeExternal})
	if err != nil {
		t.Fatal(err)
	}
	id := *created.KeyMetadata.KeyId
	if created.KeyMetadata.KeyState != types.KeyStatePendingImport || created.KeyMetadata.Origin != types.OriginTypeExternal {
		t.Fatalf("EXTERNAL key: %+v", created.KeyMetadata)
	}
	_, err = in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &id, Plaintext: []byte("x")})
	wantCode(t, err, "KMSInvalidStateException")

	material := make([]byte, 32)
	rand.Read(material)
	params := importParams(t, in, id, types.AlgorithmSpecRsaesOaepSha256)
	validTo := in.clock.Now().Add(48 * time.Hour)
	imp, err := in.kms.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{KeyId: &id, ImportToken: params.ImportToken,
		EncryptedKeyMaterial: wrapForImport(t, params, types.AlgorithmSpecRsaesOaepSha256, material),
		ExpirationModel:      types.ExpirationModelTypeKeyMaterialExpires, ValidTo: &validTo})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := in.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
	if d.KeyMetadata.KeyState != types.KeyStateEnabled || d.KeyMetadata.ExpirationModel != types.ExpirationModelTypeKeyMaterialExpires ||
		!d.KeyMetadata.ValidTo.Equal(validTo) {
		t.Fatalf("after import: %+v", d.KeyMetadata)
	}

	// Ciphertext made outside keyledger with the same material decrypts inside.
	outside := ciphertext.Seal(ciphertext.Header{KeyID: id, MaterialID: *imp.KeyMaterialId}, secret.New(material),
		[]byte("sealed outside"), map[string]string{"who": "test"})
	dec, err := in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: outside, EncryptionContext: map[string]string{"who": "test"}})
	if err != nil || string(dec.Plaintext) != "sealed outside" {
		t.Fatalf("outside ciphertext: %v", err)
	}
	enc, _ := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &id, Plaintext: []byte("sealed inside")})

	// Re-importing the same material is allowed; other material is not.
	p2 := importParams(t, in, id, types.AlgorithmSpecRsaesOaepSha256)
	other := make([]byte, 32)
	rand.Read(other)
	_, err = in.kms.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{KeyId: &id, ImportToken: p2.ImportToken,
		EncryptedKeyMaterial: wrapForImport(t, p2, types.AlgorithmSpecRsaesOaepSha256, other), ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire})
	wantCode(t, err, "IncorrectKeyMaterialException")
	_, err = in.kms.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{KeyId: &id, ImportToken: []byte("forged token"),
		EncryptedKeyMaterial: wrapForImport(t, p2, types.AlgorithmSpecRsaesOaepSha256, material), ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire})
	wantCode(t, err, "InvalidImportTokenException")
	_, err = in.kms.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{KeyId: &id, ImportToken: p2.ImportToken,
		EncryptedKeyMaterial: wrapForImport(t, p2, types.AlgorithmSpecRsaesOaepSha256, material), ExpirationModel: types.ExpirationModelTypeKeyMaterialExpires})
	wantCode(t, err, "ValidationException") // ValidTo missing

	// The material expires: the scheduler destroys it and the key waits for import.
	in.clock.Advance(48*time.Hour + time.Second)
	if err := in.node.Service.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	d, _ = in.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
	if d.KeyMetadata.KeyState != types.KeyStatePendingImport {
		t.Fatalf("after expiry: %s", d.KeyMetadata.KeyState)
	}
	_, err = in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	wantCode(t, err, "KMSInvalidStateException")
	if in.materialStored(*imp.KeyMaterialId) {
		t.Fatal("expired material still in the material store")
	}
	// The token is past its 24 hours too.
	_, err = in.kms.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{KeyId: &id, ImportToken: p2.ImportToken,
		EncryptedKeyMaterial: wrapForImport(t, p2, types.AlgorithmSpecRsaesOaepSha256, material), ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire})
	wantCode(t, err, "ExpiredImportTokenException")

	// Importing again brings the old ciphertext back.
	p3 := importParams(t, in, id, types.AlgorithmSpecRsaAesKeyWrapSha256)
	if _, err := in.kms.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{KeyId: &id, ImportToken: p3.ImportToken,
		EncryptedKeyMaterial: wrapForImport(t, p3, types.AlgorithmSpecRsaAesKeyWrapSha256, material),
		ExpirationModel:      types.ExpirationModelTypeKeyMaterialDoesNotExpire}); err != nil {
		t.Fatal(err)
	}
	dec, err = in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	if err != nil || string(dec.Plaintext) != "sealed inside" {
		t.Fatalf("after re-import: %v", err)
	}
	// The start-up sweep of destroyed material must not take the re-imported one.
	in.restart()
	if _, err := in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob}); err != nil {
		t.Fatalf("re-imported material lost at restart: %v", err)
	}

	// DeleteImportedKeyMaterial.
	del, err := in.kms.DeleteImportedKeyMaterial(ctx, &kms.DeleteImportedKeyMaterialInput{KeyId: &id})
	if err != nil {
		t.Fatal(err)
	}
	d, _ = in.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
	if d.KeyMetadata.KeyState != types.KeyStatePendingImport {
		t.Fatalf("after delete: %s", d.KeyMetadata.KeyState)
	}
	if in.materialStored(*del.KeyMaterialId) {
		t.Fatal("deleted material still in the material store")
	}
	// Keys made by KMS take no imports.
	kmsKey := in.createKey("native")
	_, err = in.kms.GetParametersForImport(ctx, &kms.GetParametersForImportInput{KeyId: &kmsKey,
		WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256, WrappingKeySpec: types.WrappingKeySpecRsa2048})
	wantCode(t, err, "UnsupportedOperationException")
}

func TestImportAsymmetricAndHMACMaterial(t *testing.T) {
	in := start(t)
	ctx := context.Background()

	// An ECC P-256 signing key from outside.
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	created, _ := in.kms.CreateKey(ctx, &kms.CreateKeyInput{Origin: types.OriginTypeExternal, KeySpec: types.KeySpecEccNistP256, KeyUsage: types.KeyUsageTypeSignVerify})
	id := *created.KeyMetadata.KeyId
	p := importParams(t, in, id, types.AlgorithmSpecRsaAesKeyWrapSha256)
	if _, err := in.kms.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{KeyId: &id, ImportToken: p.ImportToken,
		EncryptedKeyMaterial: wrapForImport(t, p, types.AlgorithmSpecRsaAesKeyWrapSha256, der),
		ExpirationModel:      types.ExpirationModelTypeKeyMaterialDoesNotExpire}); err != nil {
		t.Fatal(err)
	}
	pub, err := in.kms.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: &id})
	wantPub, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil || !bytes.Equal(pub.PublicKey, wantPub) {
		t.Fatalf("public key of the imported key: %v", err)
	}
	msg := []byte("signed outside")
	d := sha256.Sum256(msg)
	sig, _ := ecdsa.SignASN1(rand.Reader, priv, d[:])
	if _, err := in.kms.Verify(ctx, &kms.VerifyInput{KeyId: &id, Message: msg, Signature: sig, SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256}); err != nil {
		t.Fatalf("a signature made outside does not verify inside: %v", err)
	}
	// Material of the wrong kind is refused.
	hk, _ := in.kms.CreateKey(ctx, &kms.CreateKeyInput{Origin: types.OriginTypeExternal, KeySpec: types.KeySpecEccNistP384, KeyUsage: types.KeyUsageTypeSignVerify})
	p = importParams(t, in, *hk.KeyMetadata.KeyId, types.AlgorithmSpecRsaAesKeyWrapSha256)
	_, err = in.kms.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{KeyId: hk.KeyMetadata.KeyId, ImportToken: p.ImportToken,
		EncryptedKeyMaterial: wrapForImport(t, p, types.AlgorithmSpecRsaAesKeyWrapSha256, der),
		ExpirationModel:      types.ExpirationModelTypeKeyMaterialDoesNotExpire})
	wantCode(t, err, "IncorrectKeyMaterialException")

	// An HMAC key from outside.
	hmacKey := make([]byte, 32)
	rand.Read(hmacKey)
	mk, _ := in.kms.CreateKey(ctx, &kms.CreateKeyInput{Origin: types.OriginTypeExternal, KeySpec: types.KeySpecHmac256, KeyUsage: types.KeyUsageTypeGenerateVerifyMac})
	mid := *mk.KeyMetadata.KeyId
	p = importParams(t, in, mid, types.AlgorithmSpecRsaesOaepSha256)
	if _, err := in.kms.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{KeyId: &mid, ImportToken: p.ImportToken,
		EncryptedKeyMaterial: wrapForImport(t, p, types.AlgorithmSpecRsaesOaepSha256, hmacKey),
		ExpirationModel:      types.ExpirationModelTypeKeyMaterialDoesNotExpire}); err != nil {
		t.Fatal(err)
	}
	out, err := in.kms.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: &mid, Message: msg, MacAlgorithm: types.MacAlgorithmSpecHmacSha256})
	m := hmac.New(sha256.New, hmacKey)
	m.Write(msg)
	if err != nil || !bytes.Equal(out.Mac, m.Sum(nil)) {
		t.Fatalf("MAC of imported HMAC key differs from the one computed outside: %v", err)
	}

}
