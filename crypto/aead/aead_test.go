package aead

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/keyledger/keyledger/crypto/secret"
)

func TestRoundTripAndTamper(t *testing.T) {
	key := secret.Random(32)
	pt := []byte("hello world")
	sealed := Seal(nil, key, "test", pt, []byte("aad"))
	if len(sealed) != len(pt)+Overhead {
		t.Fatalf("len = %d", len(sealed))
	}
	got, err := Open(key, "test", sealed, []byte("aad"))
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 1
		if _, err := Open(key, "test", bad, []byte("aad")); err != ErrOpen {
			t.Fatalf("flip at %d: err = %v", i, err)
		}
	}
	if _, err := Open(key, "other", sealed, []byte("aad")); err != ErrOpen {
		t.Fatal("wrong label opened")
	}
	if _, err := Open(key, "test", sealed, []byte("aaD")); err != ErrOpen {
		t.Fatal("wrong aad opened")
	}
	if _, err := Open(secret.Random(32), "test", sealed, []byte("aad")); err != ErrOpen {
		t.Fatal("wrong key opened")
	}
	if _, err := Open(key, "test", sealed[:Overhead-1], nil); err != ErrOpen {
		t.Fatal("short input opened")
	}
	if bytes.Equal(Seal(nil, key, "test", pt, nil), Seal(nil, key, "test", pt, nil)) {
		t.Fatal("two seals of one message are equal")
	}
}

// TestKnownAnswer pins the construction: a sealed message built by hand from
// the specification (HKDF-SHA256 then AES-256-GCM) opens with Open.
func TestKnownAnswer(t *testing.T) {
	keyBytes, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	salt, _ := hex.DecodeString("a0a1a2a3a4a5a6a7a8a9aaabacadaeaf")
	nonce, _ := hex.DecodeString("b0b1b2b3b4b5b6b7b8b9babb")
	k, _ := hkdf.Key(sha256.New, keyBytes, salt, "kat", 32)
	block, _ := aes.NewCipher(k)
	g, _ := cipher.NewGCM(block)
	sealed := append(append(bytes.Clone(salt), nonce...), g.Seal(nil, nonce, []byte("known answer"), []byte("ctx"))...)
	got, err := Open(secret.New(keyBytes), "kat", sealed, []byte("ctx"))
	if err != nil || string(got) != "known answer" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	const want = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babb"
	if hex.EncodeToString(sealed[:28]) != want {
		t.Fatal("layout changed")
	}
}
