package tests

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"slices"
	"testing"

	"filippo.io/mldsa"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/keyledger/keyledger/crypto/asymmetric/asymmetrictest"
	"github.com/keyledger/keyledger/crypto/keyspec"
)

func hashFor(alg types.SigningAlgorithmSpec) crypto.Hash {
	switch alg {
	case types.SigningAlgorithmSpecRsassaPssSha256, types.SigningAlgorithmSpecRsassaPkcs1V15Sha256, types.SigningAlgorithmSpecEcdsaSha256:
		return crypto.SHA256
	case types.SigningAlgorithmSpecRsassaPssSha384, types.SigningAlgorithmSpecRsassaPkcs1V15Sha384, types.SigningAlgorithmSpecEcdsaSha384:
		return crypto.SHA384
	case types.SigningAlgorithmSpecRsassaPssSha512, types.SigningAlgorithmSpecRsassaPkcs1V15Sha512, types.SigningAlgorithmSpecEcdsaSha512,
		types.SigningAlgorithmSpecEd25519PhSha512:
		return crypto.SHA512
	}
	return 0
}

// verifyWithStdlib checks a KMS signature using only the public key from
// GetPublicKey and libraries outside keyledger's signing path.
func verifyWithStdlib(t *testing.T, spec types.KeySpec, pubDER []byte, alg types.SigningAlgorithmSpec, msg, sig []byte) {
	t.Helper()
	ok, err := asymmetrictest.Verify(keyspec.Spec(spec), pubDER, keyspec.SigningAlgorithm(alg), msg, sig)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatalf("%s/%s signature does not verify with the public key outside keyledger", spec, alg)
	}
}

var signingAlgorithms = map[types.KeySpec][]types.SigningAlgorithmSpec{
	types.KeySpecRsa2048: {types.SigningAlgorithmSpecRsassaPssSha256, types.SigningAlgorithmSpecRsassaPssSha384, types.SigningAlgorithmSpecRsassaPssSha512,
		types.SigningAlgorithmSpecRsassaPkcs1V15Sha256, types.SigningAlgorithmSpecRsassaPkcs1V15Sha384, types.SigningAlgorithmSpecRsassaPkcs1V15Sha512},
	types.KeySpecRsa3072:             {types.SigningAlgorithmSpecRsassaPssSha256, types.SigningAlgorithmSpecRsassaPkcs1V15Sha512},
	types.KeySpecRsa4096:             {types.SigningAlgorithmSpecRsassaPssSha512, types.SigningAlgorithmSpecRsassaPkcs1V15Sha256},
	types.KeySpecEccNistP256:         {types.SigningAlgorithmSpecEcdsaSha256},
	types.KeySpecEccNistP384:         {types.SigningAlgorithmSpecEcdsaSha384},
	types.KeySpecEccNistP521:         {types.SigningAlgorithmSpecEcdsaSha512},
	types.KeySpecEccSecgP256k1:       {types.SigningAlgorithmSpecEcdsaSha256},
	types.KeySpecEccNistEdwards25519: {types.SigningAlgorithmSpecEd25519Sha512, types.SigningAlgorithmSpecEd25519PhSha512},
	types.KeySpecMlDsa44:             {types.SigningAlgorithmSpecMlDsaShake256},
	types.KeySpecMlDsa65:             {types.SigningAlgorithmSpecMlDsaShake256},
	types.KeySpecMlDsa87:             {types.SigningAlgorithmSpecMlDsaShake256},
}

func TestSignVerifyEverySpec(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	msg := []byte("sign me, keyledger")
	for spec, algs := range signingAlgorithms {
		spec, algs := spec, algs
		t.Run(string(spec), func(t *testing.T) {
			created, err := in.kms.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: spec, KeyUsage: types.KeyUsageTypeSignVerify})
			if err != nil {
				t.Fatal(err)
			}
			md := created.KeyMetadata
			id := md.KeyId
			if md.KeySpec != spec || md.KeyUsage != types.KeyUsageTypeSignVerify || len(md.EncryptionAlgorithms) != 0 {
				t.Fatalf("metadata %+v", md)
			}
			for _, a := range algs {
				if !slices.Contains(md.SigningAlgorithms, a) {
					t.Fatalf("DescribeKey lists %v, lacks %s", md.SigningAlgorithms, a)
				}
			}
			pub, err := in.kms.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: id})
			if err != nil {
				t.Fatal(err)
			}
			if pub.KeySpec != spec || pub.KeyUsage != types.KeyUsageTypeSignVerify || len(pub.SigningAlgorithms) != len(md.SigningAlgorithms) {
				t.Fatalf("GetPublicKey %+v", pub)
			}
			for _, alg := range algs {
				mt, m := types.MessageTypeRaw, msg
				if alg == types.SigningAlgorithmSpecEd25519PhSha512 {
					d := sha512.Sum512(msg)
					mt, m = types.MessageTypeDigest, d[:]
				}
				out, err := in.kms.Sign(ctx, &kms.SignInput{KeyId: id, Message: m, MessageType: mt, SigningAlgorithm: alg})
				if err != nil {
					t.Fatalf("%s: %v", alg, err)
				}
				verifyWithStdlib(t, spec, pub.PublicKey, alg, msg, out.Signature)
				v, err := in.kms.Verify(ctx, &kms.VerifyInput{KeyId: id, Message: m, MessageType: mt, Signature: out.Signature, SigningAlgorithm: alg})
				if err != nil || !v.SignatureValid {
					t.Fatalf("Verify: %v", err)
				}
				bad := bytes.Clone(out.Signature)
				bad[len(bad)/2] ^= 0x10
				_, err = in.kms.Verify(ctx, &kms.VerifyInput{KeyId: id, Message: m, MessageType: mt, Signature: bad, SigningAlgorithm: alg})
				wantCode(t, err, "KMSInvalidSignatureException")
				if h := hashFor(alg); h != 0 && alg != types.SigningAlgorithmSpecEd25519PhSha512 {
					w := h.New()
					w.Write(msg)
					dsig, err := in.kms.Sign(ctx, &kms.SignInput{KeyId: id, Message: w.Sum(nil), MessageType: types.MessageTypeDigest, SigningAlgorithm: alg})
					if err != nil {
						t.Fatalf("DIGEST: %v", err)
					}
					verifyWithStdlib(t, spec, pub.PublicKey, alg, msg, dsig.Signature)
					_, err = in.kms.Sign(ctx, &kms.SignInput{KeyId: id, Message: []byte("not a digest"), MessageType: types.MessageTypeDigest, SigningAlgorithm: alg})
					wantCode(t, err, "ValidationException")
				}
			}
			// An algorithm of another spec is refused.
			other := types.SigningAlgorithmSpecEcdsaSha384
			if spec == types.KeySpecEccNistP384 {
				other = types.SigningAlgorithmSpecEcdsaSha256
			}
			_, err = in.kms.Sign(ctx, &kms.SignInput{KeyId: id, Message: msg, SigningAlgorithm: other})
			wantCode(t, err, "InvalidKeyUsageException")
		})
	}
}

func TestMLDSAExternalMu(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	out, _ := in.kms.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: types.KeySpecMlDsa65, KeyUsage: types.KeyUsageTypeSignVerify})
	mu := make([]byte, 64)
	rand.Read(mu)
	sig, err := in.kms.Sign(ctx, &kms.SignInput{KeyId: out.KeyMetadata.KeyId, Message: mu, MessageType: types.MessageTypeExternalMu,
		SigningAlgorithm: types.SigningAlgorithmSpecMlDsaShake256})
	if err != nil || len(sig.Signature) != mldsa.MLDSA65().SignatureSize() {
		t.Fatalf("EXTERNAL_MU sign: %v", err)
	}
	_, err = in.kms.Sign(ctx, &kms.SignInput{KeyId: out.KeyMetadata.KeyId, Message: mu[:10], MessageType: types.MessageTypeExternalMu,
		SigningAlgorithm: types.SigningAlgorithmSpecMlDsaShake256})
	wantCode(t, err, "ValidationException")
}

func TestRSAEncryption(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	for _, tc := range []struct {
		spec types.KeySpec
		max  map[types.EncryptionAlgorithmSpec]int
	}{
		{types.KeySpecRsa2048, map[types.EncryptionAlgorithmSpec]int{types.EncryptionAlgorithmSpecRsaesOaepSha1: 214, types.EncryptionAlgorithmSpecRsaesOaepSha256: 190}},
		{types.KeySpecRsa3072, map[types.EncryptionAlgorithmSpec]int{types.EncryptionAlgorithmSpecRsaesOaepSha1: 342, types.EncryptionAlgorithmSpecRsaesOaepSha256: 318}},
		{types.KeySpecRsa4096, map[types.EncryptionAlgorithmSpec]int{types.EncryptionAlgorithmSpecRsaesOaepSha1: 470, types.EncryptionAlgorithmSpecRsaesOaepSha256: 446}},
	} {
		t.Run(string(tc.spec), func(t *testing.T) {
			created, err := in.kms.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: tc.spec, KeyUsage: types.KeyUsageTypeEncryptDecrypt})
			if err != nil {
				t.Fatal(err)
			}
			id := created.KeyMetadata.KeyId
			pubOut, _ := in.kms.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: id})
			pub, err := x509.ParsePKIXPublicKey(pubOut.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			for alg, max := range tc.max {
				pt := bytes.Repeat([]byte{0x5a}, max)
				h := sha256.New
				if alg == types.EncryptionAlgorithmSpecRsaesOaepSha1 {
					h = crypto.SHA1.New
				}
				// Encrypted outside with the public key, decrypted by KMS.
				ct, err := rsa.EncryptOAEP(h(), rand.Reader, pub.(*rsa.PublicKey), pt, nil)
				if err != nil {
					t.Fatal(err)
				}
				dec, err := in.kms.Decrypt(ctx, &kms.DecryptInput{KeyId: id, CiphertextBlob: ct, EncryptionAlgorithm: alg})
				if err != nil || !bytes.Equal(dec.Plaintext, pt) || dec.EncryptionAlgorithm != alg {
					t.Fatalf("%s decrypt: %v", alg, err)
				}
				enc, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: id, Plaintext: pt, EncryptionAlgorithm: alg})
				if err != nil {
					t.Fatal(err)
				}
				dec, err = in.kms.Decrypt(ctx, &kms.DecryptInput{KeyId: id, CiphertextBlob: enc.CiphertextBlob, EncryptionAlgorithm: alg})
				if err != nil || !bytes.Equal(dec.Plaintext, pt) {
					t.Fatalf("round trip: %v", err)
				}
				_, err = in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: id, Plaintext: append(pt, 1), EncryptionAlgorithm: alg})
				wantCode(t, err, "ValidationException")
			}
			_, err = in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: id, Plaintext: []byte("x")})
			wantCode(t, err, "ValidationException")
			_, err = in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: id, Plaintext: []byte("x"), EncryptionAlgorithm: types.EncryptionAlgorithmSpecSymmetricDefault})
			wantCode(t, err, "InvalidKeyUsageException")
			_, err = in.kms.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: id, KeySpec: types.DataKeySpecAes256})
			wantCode(t, err, "InvalidKeyUsageException")
			_, err = in.kms.Sign(ctx, &kms.SignInput{KeyId: id, Message: []byte("x"), SigningAlgorithm: types.SigningAlgorithmSpecRsassaPssSha256})
			wantCode(t, err, "InvalidKeyUsageException")
		})
	}
}

func TestDeriveSharedSecret(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	for spec, curve := range map[types.KeySpec]ecdh.Curve{types.KeySpecEccNistP256: ecdh.P256(), types.KeySpecEccNistP384: ecdh.P384(), types.KeySpecEccNistP521: ecdh.P521()} {
		created, err := in.kms.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: spec, KeyUsage: types.KeyUsageTypeKeyAgreement})
		if err != nil {
			t.Fatal(err)
		}
		id := created.KeyMetadata.KeyId
		if !slices.Equal(created.KeyMetadata.KeyAgreementAlgorithms, []types.KeyAgreementAlgorithmSpec{types.KeyAgreementAlgorithmSpecEcdh}) {
			t.Fatalf("key agreement algorithms %v", created.KeyMetadata.KeyAgreementAlgorithms)
		}
		peer, _ := curve.GenerateKey(rand.Reader)
		peerDER, _ := x509.MarshalPKIXPublicKey(peer.PublicKey())
		out, err := in.kms.DeriveSharedSecret(ctx, &kms.DeriveSharedSecretInput{KeyId: id, KeyAgreementAlgorithm: types.KeyAgreementAlgorithmSpecEcdh, PublicKey: peerDER})
		if err != nil {
			t.Fatal(err)
		}
		pubOut, _ := in.kms.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: id})
		pub, _ := x509.ParsePKIXPublicKey(pubOut.PublicKey)
		theirs, _ := pub.(*ecdsa.PublicKey).ECDH()
		want, _ := peer.ECDH(theirs)
		if !bytes.Equal(out.SharedSecret, want) || out.KeyOrigin != types.OriginTypeAwsKms {
			t.Fatalf("%s: shared secret differs from the peer's", spec)
		}
		_, err = in.kms.DeriveSharedSecret(ctx, &kms.DeriveSharedSecretInput{KeyId: id, KeyAgreementAlgorithm: types.KeyAgreementAlgorithmSpecEcdh, PublicKey: []byte("junk")})
		wantCode(t, err, "ValidationException")
		_, err = in.kms.Sign(ctx, &kms.SignInput{KeyId: id, Message: []byte("x"), SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256})
		wantCode(t, err, "InvalidKeyUsageException")
	}
	// secp256k1 and Ed25519 keys cannot do key agreement.
	_, err := in.kms.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: types.KeySpecEccSecgP256k1, KeyUsage: types.KeyUsageTypeKeyAgreement})
	wantCode(t, err, "ValidationException")
}

func TestHMAC(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	specs := map[types.KeySpec]types.MacAlgorithmSpec{types.KeySpecHmac224: types.MacAlgorithmSpecHmacSha224,
		types.KeySpecHmac256: types.MacAlgorithmSpecHmacSha256, types.KeySpecHmac384: types.MacAlgorithmSpecHmacSha384,
		types.KeySpecHmac512: types.MacAlgorithmSpecHmacSha512}
	for spec, alg := range specs {
		created, err := in.kms.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: spec, KeyUsage: types.KeyUsageTypeGenerateVerifyMac})
		if err != nil {
			t.Fatal(err)
		}
		id := created.KeyMetadata.KeyId
		if !slices.Equal(created.KeyMetadata.MacAlgorithms, []types.MacAlgorithmSpec{alg}) {
			t.Fatalf("mac algorithms %v", created.KeyMetadata.MacAlgorithms)
		}
		out, err := in.kms.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: id, Message: []byte("authenticate me"), MacAlgorithm: alg})
		if err != nil {
			t.Fatal(err)
		}
		v, err := in.kms.VerifyMac(ctx, &kms.VerifyMacInput{KeyId: id, Message: []byte("authenticate me"), MacAlgorithm: alg, Mac: out.Mac})
		if err != nil || !v.MacValid {
			t.Fatalf("VerifyMac: %v", err)
		}
		_, err = in.kms.VerifyMac(ctx, &kms.VerifyMacInput{KeyId: id, Message: []byte("authenticate mE"), MacAlgorithm: alg, Mac: out.Mac})
		wantCode(t, err, "KMSInvalidMacException")
		wrong := types.MacAlgorithmSpecHmacSha512
		if alg == wrong {
			wrong = types.MacAlgorithmSpecHmacSha256
		}
		_, err = in.kms.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: id, Message: []byte("x"), MacAlgorithm: wrong})
		wantCode(t, err, "InvalidKeyUsageException")
		_, err = in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: id, Plaintext: []byte("x")})
		wantCode(t, err, "InvalidKeyUsageException")
		_, err = in.kms.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: id})
		wantCode(t, err, "UnsupportedOperationException")
		st, err := in.kms.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: id})
		if err != nil || st.KeyRotationEnabled {
			t.Fatalf("rotation status of an HMAC key: %v", err)
		}
		_, err = in.kms.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: id})
		wantCode(t, err, "UnsupportedOperationException")
	}
	sym := in.createKey("sym")
	_, err := in.kms.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: &sym, Message: []byte("x"), MacAlgorithm: types.MacAlgorithmSpecHmacSha256})
	wantCode(t, err, "InvalidKeyUsageException")
	_, err = in.kms.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: types.KeySpecHmac256})
	wantCode(t, err, "ValidationException") // HMAC keys need KeyUsage GENERATE_VERIFY_MAC
}

func TestGenerateDataKeyPair(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	k := in.createKey("kek")
	ec := map[string]string{"pair": "1"}
	for _, spec := range []types.DataKeyPairSpec{types.DataKeyPairSpecRsa2048, types.DataKeyPairSpecEccNistP256, types.DataKeyPairSpecEccNistP384,
		types.DataKeyPairSpecEccNistP521, types.DataKeyPairSpecEccSecgP256k1, types.DataKeyPairSpecEccNistEdwards25519} {
		t.Run(string(spec), func(t *testing.T) {
			out, err := in.kms.GenerateDataKeyPair(ctx, &kms.GenerateDataKeyPairInput{KeyId: &k, KeyPairSpec: spec, EncryptionContext: ec})
			if err != nil {
				t.Fatal(err)
			}
			if out.KeyPairSpec != spec || *out.KeyMaterialId == "" {
				t.Fatalf("answer %+v", out)
			}
			// The private key is PKCS#8 and matches the public key.
			if spec != types.DataKeyPairSpecEccSecgP256k1 {
				priv, err := x509.ParsePKCS8PrivateKey(out.PrivateKeyPlaintext)
				if err != nil {
					t.Fatalf("PKCS#8: %v", err)
				}
				pubDER, _ := x509.MarshalPKIXPublicKey(priv.(crypto.Signer).Public())
				if !bytes.Equal(pubDER, out.PublicKey) {
					t.Fatal("the public key does not belong to the private key")
				}
			}
			dec, err := in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: out.PrivateKeyCiphertextBlob, EncryptionContext: ec})
			if err != nil || !bytes.Equal(dec.Plaintext, out.PrivateKeyPlaintext) {
				t.Fatalf("encrypted private key: %v", err)
			}
		})
	}
	np, err := in.kms.GenerateDataKeyPairWithoutPlaintext(ctx, &kms.GenerateDataKeyPairWithoutPlaintextInput{KeyId: &k, KeyPairSpec: types.DataKeyPairSpecEccNistP256})
	if err != nil || len(np.PublicKey) == 0 || len(np.PrivateKeyCiphertextBlob) == 0 {
		t.Fatalf("without plaintext: %v", err)
	}
	_, err = in.kms.GenerateDataKeyPair(ctx, &kms.GenerateDataKeyPairInput{KeyId: &k, KeyPairSpec: types.DataKeyPairSpecSm2})
	wantCode(t, err, "UnsupportedOperationException")
	sig, _ := in.kms.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: types.KeySpecEccNistP256, KeyUsage: types.KeyUsageTypeSignVerify})
	_, err = in.kms.GenerateDataKeyPair(ctx, &kms.GenerateDataKeyPairInput{KeyId: sig.KeyMetadata.KeyId, KeyPairSpec: types.DataKeyPairSpecEccNistP256})
	wantCode(t, err, "InvalidKeyUsageException")

}

func TestSM2IsNotInThisRegion(t *testing.T) {
	in := start(t)
	_, err := in.kms.CreateKey(context.Background(), &kms.CreateKeyInput{KeySpec: types.KeySpecSm2, KeyUsage: types.KeyUsageTypeSignVerify})
	wantCode(t, err, "UnsupportedOperationException")

}
