package asymmetric

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"

	"filippo.io/mldsa"

	"github.com/keyledger/keyledger/crypto/asymmetric/asymmetrictest"
	"github.com/keyledger/keyledger/crypto/keyspec"
	"github.com/keyledger/keyledger/crypto/secret"
)

var signSpecs = []keyspec.Spec{keyspec.RSA2048, keyspec.ECCNISTP256, keyspec.ECCNISTP384, keyspec.ECCNISTP521,
	keyspec.ECCSECGP256K1, keyspec.ECCEdwards25519, keyspec.MLDSA44, keyspec.MLDSA65, keyspec.MLDSA87}

// verifyOutside checks a signature with libraries other than this
// package's own code path (see asymmetrictest).
func verifyOutside(t *testing.T, spec keyspec.Spec, pubDER []byte, alg keyspec.SigningAlgorithm, msg, sig []byte) bool {
	t.Helper()
	ok, err := asymmetrictest.Verify(spec, pubDER, alg, msg, sig)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestSignVerifyEverySpec(t *testing.T) {
	msg := []byte("the message to sign")
	for _, spec := range signSpecs {
		mat, err := Generate(spec)
		if err != nil {
			t.Fatal(err)
		}
		k, err := Parse(spec, mat)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		for _, alg := range spec.SigningAlgorithms(keyspec.SignVerify) {
			t.Run(fmt.Sprintf("%s/%s", spec, alg), func(t *testing.T) {
				mt, in := keyspec.Raw, msg
				if alg == keyspec.ED25519PHSHA512 {
					d := sha512.Sum512(msg)
					mt, in = keyspec.Digest, d[:]
				}
				sig, err := k.Sign(alg, mt, in)
				if err != nil {
					t.Fatal(err)
				}
				if err := k.Verify(alg, mt, in, sig); err != nil {
					t.Fatalf("own verify: %v", err)
				}
				if !verifyOutside(t, spec, k.PublicKeyDER(), alg, msg, sig) {
					t.Fatal("signature does not verify outside keyledger")
				}
				bad := bytes.Clone(sig)
				bad[len(bad)/2] ^= 1
				if err := k.Verify(alg, mt, in, bad); !errors.Is(err, ErrInvalidSignature) {
					t.Fatalf("tampered signature: %v", err)
				}
				if h := hashOf(alg); h != 0 && alg != keyspec.ED25519PHSHA512 {
					w := h.New()
					w.Write(msg)
					dsig, err := k.Sign(alg, keyspec.Digest, w.Sum(nil))
					if err != nil || !verifyOutside(t, spec, k.PublicKeyDER(), alg, msg, dsig) {
						t.Fatalf("DIGEST signing: %v", err)
					}
					var ie *InputError
					if _, err := k.Sign(alg, keyspec.Digest, []byte("short")); !errors.As(err, &ie) {
						t.Fatalf("short digest accepted: %v", err)
					}
				}
			})
		}
	}
}

func TestMLDSAExternalMu(t *testing.T) {
	mat, _ := Generate(keyspec.MLDSA65)
	k, err := Parse(keyspec.MLDSA65, mat)
	if err != nil {
		t.Fatal(err)
	}
	mu := make([]byte, 64)
	rand.Read(mu)
	if sig, err := k.Sign(keyspec.MLDSASHAKE256, keyspec.ExternalMu, mu); err != nil || len(sig) != mldsa.MLDSA65().SignatureSize() {
		t.Fatalf("external mu: %d bytes, %v", len(sig), err)
	}
	var ie *InputError
	if _, err := k.Sign(keyspec.MLDSASHAKE256, keyspec.ExternalMu, mu[:32]); !errors.As(err, &ie) {
		t.Fatal("short mu accepted")
	}
	if _, err := k.Sign(keyspec.MLDSASHAKE256, keyspec.Digest, mu); !errors.As(err, &ie) {
		t.Fatal("DIGEST accepted for ML-DSA")
	}
}

// TestEd25519KnownAnswers uses RFC 8032 §7.1 TEST 1 and §7.3 (Ed25519ph "abc").
func TestEd25519KnownAnswers(t *testing.T) {
	for _, tc := range []struct {
		seed, msg, sig string
		alg            keyspec.SigningAlgorithm
	}{
		{"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", "",
			"e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
			keyspec.ED25519SHA512},
		{"833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42", "616263",
			"98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae4131f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406",
			keyspec.ED25519PHSHA512},
	} {
		seed, _ := hex.DecodeString(tc.seed)
		der, _ := x509.MarshalPKCS8PrivateKey(ed25519.NewKeyFromSeed(seed))
		k, err := Parse(keyspec.ECCEdwards25519, secret.New(der))
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := hex.DecodeString(tc.msg)
		mt := keyspec.Raw
		if tc.alg == keyspec.ED25519PHSHA512 {
			d := sha512.Sum512(msg)
			msg, mt = d[:], keyspec.Digest
		}
		sig, err := k.Sign(tc.alg, mt, msg)
		if err != nil || hex.EncodeToString(sig) != tc.sig {
			t.Fatalf("%s: got %x, %v", tc.alg, sig, err)
		}
	}
}

func TestRSAEncryption(t *testing.T) {
	mat, _ := Generate(keyspec.RSA2048)
	k, _ := Parse(keyspec.RSA2048, mat)
	pub, _ := x509.ParsePKIXPublicKey(k.PublicKeyDER())
	for _, alg := range []keyspec.EncryptionAlgorithm{keyspec.AlgRSAESOAEPSHA1, keyspec.AlgRSAESOAEPSHA256} {
		max := MaxPlaintext(keyspec.RSA2048, alg)
		if want := map[keyspec.EncryptionAlgorithm]int{keyspec.AlgRSAESOAEPSHA1: 214, keyspec.AlgRSAESOAEPSHA256: 190}[alg]; max != want {
			t.Fatalf("%s max %d, want %d (AWS's table)", alg, max, want)
		}
		pt := bytes.Repeat([]byte{7}, max)
		// Encrypted outside with the standard library, decrypted inside.
		ct, err := rsa.EncryptOAEP(oaepHash(alg).New(), rand.Reader, pub.(*rsa.PublicKey), pt, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := k.Decrypt(alg, ct)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("%s decrypt: %v", alg, err)
		}
		ct2, err := k.Encrypt(alg, pt)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := k.Decrypt(alg, ct2); !bytes.Equal(got, pt) {
			t.Fatal("round trip")
		}
		if _, err := k.Encrypt(alg, append(pt, 1)); err == nil {
			t.Fatal("over-long plaintext accepted")
		}
		ct[5] ^= 1
		if _, err := k.Decrypt(alg, ct); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("tampered: %v", err)
		}
	}
}

func TestECDH(t *testing.T) {
	for _, spec := range []keyspec.Spec{keyspec.ECCNISTP256, keyspec.ECCNISTP384, keyspec.ECCNISTP521} {
		mat, _ := Generate(spec)
		k, _ := Parse(spec, mat)
		curve := map[keyspec.Spec]ecdh.Curve{keyspec.ECCNISTP256: ecdh.P256(), keyspec.ECCNISTP384: ecdh.P384(), keyspec.ECCNISTP521: ecdh.P521()}[spec]
		peer, _ := curve.GenerateKey(rand.Reader)
		peerDER, _ := x509.MarshalPKIXPublicKey(peer.PublicKey())
		shared, err := k.SharedSecret(peerDER)
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := x509.ParsePKIXPublicKey(k.PublicKeyDER())
		ours, _ := pub.(*ecdsa.PublicKey).ECDH()
		want, _ := peer.ECDH(ours)
		if !bytes.Equal(shared.Expose(), want) {
			t.Fatalf("%s: shared secrets differ", spec)
		}
	}
	mat, _ := Generate(keyspec.ECCNISTP256)
	k, _ := Parse(keyspec.ECCNISTP256, mat)
	other, _ := ecdh.P384().GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(other.PublicKey())
	var ie *InputError
	if _, err := k.SharedSecret(der); !errors.As(err, &ie) {
		t.Fatal("a peer on another curve was accepted")
	}
}

func TestParseRejectsWrongSpec(t *testing.T) {
	mat, _ := Generate(keyspec.ECCNISTP256)
	for _, spec := range []keyspec.Spec{keyspec.ECCNISTP384, keyspec.RSA2048, keyspec.ECCSECGP256K1, keyspec.ECCEdwards25519, keyspec.MLDSA44} {
		if _, err := Parse(spec, mat); err == nil {
			t.Fatalf("P-256 material parsed as %s", spec)
		}
	}
	if s := fmt.Sprintf("%v %+v %#v", &PrivateKey{}, PrivateKey{}, &PrivateKey{}); bytes.Contains([]byte(s), []byte("key:")) {
		t.Fatalf("private key printed: %s", s)
	}
}
