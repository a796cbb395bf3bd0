package throttle

import (
	"testing"

	"github.com/keyledger/keyledger/crypto/aead"
	"github.com/keyledger/keyledger/crypto/asymmetric"
	"github.com/keyledger/keyledger/crypto/keyspec"
	"github.com/keyledger/keyledger/crypto/mac"
	"github.com/keyledger/keyledger/crypto/secret"
)

// BenchmarkCrypto measures the cryptographic work behind each cost class of
// the cost table (costs.go), so the table can be checked on a machine:
//
//	go test ./gateway/throttle -run '^$' -bench Crypto -benchtime 20x
func BenchmarkCrypto(b *testing.B) {
	msg := make([]byte, 1024)
	for _, spec := range []keyspec.Spec{keyspec.RSA2048, keyspec.RSA3072, keyspec.RSA4096, keyspec.ECCNISTP256,
		keyspec.ECCNISTP384, keyspec.ECCNISTP521, keyspec.ECCSECGP256K1, keyspec.ECCEdwards25519, keyspec.MLDSA65, keyspec.MLDSA87} {
		b.Run("Generate/"+string(spec), func(b *testing.B) {
			for b.Loop() {
				m, err := asymmetric.Generate(spec)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := asymmetric.Parse(spec, m); err != nil { // what the first use costs
					b.Fatal(err)
				}
			}
		})
	}
	for _, tc := range []struct {
		spec keyspec.Spec
		alg  keyspec.SigningAlgorithm
	}{
		{keyspec.RSA2048, keyspec.RSASSAPSSSHA256}, {keyspec.RSA3072, keyspec.RSASSAPSSSHA256}, {keyspec.RSA4096, keyspec.RSASSAPSSSHA256},
		{keyspec.ECCNISTP256, keyspec.ECDSASHA256}, {keyspec.ECCNISTP384, keyspec.ECDSASHA384}, {keyspec.ECCNISTP521, keyspec.ECDSASHA512},
		{keyspec.ECCSECGP256K1, keyspec.ECDSASHA256}, {keyspec.ECCEdwards25519, keyspec.ED25519SHA512}, {keyspec.MLDSA65, keyspec.MLDSASHAKE256},
		{keyspec.MLDSA87, keyspec.MLDSASHAKE256},
	} {
		m, err := asymmetric.Generate(tc.spec)
		if err != nil {
			b.Fatal(err)
		}
		k, err := asymmetric.Parse(tc.spec, m)
		if err != nil {
			b.Fatal(err)
		}
		var sig []byte
		b.Run("Sign/"+string(tc.spec), func(b *testing.B) {
			for b.Loop() {
				if sig, err = k.Sign(tc.alg, keyspec.Raw, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("Verify/"+string(tc.spec), func(b *testing.B) {
			for b.Loop() {
				if err := k.Verify(tc.alg, keyspec.Raw, msg, sig); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, spec := range []keyspec.Spec{keyspec.RSA2048, keyspec.RSA4096} {
		m, _ := asymmetric.Generate(spec)
		k, _ := asymmetric.Parse(spec, m)
		ct, err := k.Encrypt(keyspec.AlgRSAESOAEPSHA256, msg[:32])
		if err != nil {
			b.Fatal(err)
		}
		b.Run("Decrypt/"+string(spec), func(b *testing.B) {
			for b.Loop() {
				if _, err := k.Decrypt(keyspec.AlgRSAESOAEPSHA256, ct); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	key := secret.Random(32)
	b.Run("Encrypt/SYMMETRIC_DEFAULT", func(b *testing.B) {
		for b.Loop() {
			aead.Seal(nil, key, "bench", msg, nil)
		}
	})
	b.Run("GenerateMac/HMAC_256", func(b *testing.B) {
		for b.Loop() {
			if _, err := mac.Sum(keyspec.HMAC256, key, keyspec.HMACSHA256, msg); err != nil {
				b.Fatal(err)
			}
		}
	})
}
