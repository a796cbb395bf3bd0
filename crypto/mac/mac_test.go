package mac

import (
	"encoding/hex"
	"testing"

	"github.com/keyledger/keyledger/crypto/keyspec"
	"github.com/keyledger/keyledger/crypto/secret"
)

// TestRFC4231 uses RFC 4231 test case 2 (key "Jefe").
func TestRFC4231(t *testing.T) {
	key := secret.New([]byte("Jefe"))
	msg := []byte("what do ya want for nothing?")
	want := map[keyspec.Spec]string{
		keyspec.HMAC224: "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44",
		keyspec.HMAC256: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
		keyspec.HMAC384: "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649",
		keyspec.HMAC512: "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
	}
	for spec, hexTag := range want {
		alg := spec.MACAlgorithms()[0]
		tag, err := Sum(spec, key, alg, msg)
		if err != nil || hex.EncodeToString(tag) != hexTag {
			t.Fatalf("%s: %x %v", spec, tag, err)
		}
	}
	if _, err := Sum(keyspec.HMAC256, key, keyspec.HMACSHA512, nil); err != ErrAlgorithm {
		t.Fatal("mismatched algorithm accepted")
	}
}
