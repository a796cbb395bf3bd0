package aead

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"reflect"
	"strings"
	"sync"
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

// TestDeriveKeyMatchesCryptoHKDF holds the pooled derivation to the
// standard library's HKDF: RFC 5869's SHA-256 test cases, then random keys
// (0 to 129 bytes), salts (empty, short, longer than a SHA-256 block) and
// labels (some not ASCII), including derivations interleaved on several
// goroutines through the pool.
func TestDeriveKeyMatchesCryptoHKDF(t *testing.T) {
	ikm, _ := hex.DecodeString("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b")
	salt, _ := hex.DecodeString("000102030405060708090a0b0c")
	info, _ := hex.DecodeString("f0f1f2f3f4f5f6f7f8f9")
	var got [32]byte
	deriveKey(&got, ikm, salt, string(info))
	if want := "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"; hex.EncodeToString(got[:]) != want {
		t.Fatalf("RFC 5869 A.1: got %x, want the first 32 bytes %s", got, want)
	}
	// A.2: 80-byte inputs (a salt longer than a block, hashed as HMAC's
	// key); A.3: no salt and no info.
	seq := func(from, to int) []byte {
		var b []byte
		for c := from; c <= to; c++ {
			b = append(b, byte(c))
		}
		return b
	}
	deriveKey(&got, seq(0x00, 0x4f), seq(0x60, 0xaf), string(seq(0xb0, 0xff)))
	if want := "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"; hex.EncodeToString(got[:]) != want {
		t.Fatalf("RFC 5869 A.2: got %x, want the first 32 bytes %s", got, want)
	}
	deriveKey(&got, ikm, nil, "")
	if want := "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"; hex.EncodeToString(got[:]) != want {
		t.Fatalf("RFC 5869 A.3: got %x, want the first 32 bytes %s", got, want)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				ikm, salt := make([]byte, (i*13+g)%130), make([]byte, (i*7+g)%150)
				rand.Read(ikm)
				rand.Read(salt)
				label := strings.Repeat("l", i%90) + string(salt[:min(len(salt), i%5)])
				want, err := hkdf.Key(sha256.New, ikm, salt, label, 32)
				if err != nil {
					t.Error(err)
					return
				}
				var got [32]byte
				deriveKey(&got, ikm, salt, label)
				if !bytes.Equal(got[:], want) {
					t.Errorf("salt %d bytes, label %q: got %x, want %x", len(salt), label, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func BenchmarkSeal(b *testing.B) {
	key, pt, aad := secret.Random(32), make([]byte, 1024), make([]byte, 64)
	dst := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		Seal(dst[:0], key, "bench", pt, aad)
	}
}

// TestDeriveKeyLeavesNoSecretInPool: a state goes back to the pool
// holding nothing derived from the key, its SHA-256 digest included (a
// digest keeps the last partial block it hashed across Reset: here the
// Expand HMAC's inner hash, and before it the key itself).
func TestDeriveKeyLeavesNoSecretInPool(t *testing.T) {
	for _, label := range []string{"keyledger/v1 ciphertext", strings.Repeat("l", 70)} {
		s := hkdfStates.New().(*hkdfState)
		var out [32]byte
		s.derive(&out, bytes.Repeat([]byte{0xab}, 32), make([]byte, 16), label)
		if out == ([32]byte{}) {
			t.Fatal("no key derived")
		}
		if s.pad != [64]byte{} || s.inner != [32]byte{} || s.prk != [32]byte{} || s.okm != [32]byte{} {
			t.Fatalf("label %d bytes: scratch not cleared", len(label))
		}
		d := reflect.ValueOf(s.h).Elem()
		x, nx := d.FieldByName("x"), d.FieldByName("nx")
		if !x.IsValid() || x.Kind() != reflect.Array || !nx.IsValid() {
			t.Skipf("%T has no buffer x to inspect", s.h)
		}
		for i := range x.Len() {
			if x.Index(i).Uint() != 0 {
				t.Fatalf("label %d bytes: the pooled digest's buffer keeps bytes: x[%d] = %#x", len(label), i, x.Index(i).Uint())
			}
		}
		if nx.Int() != 0 {
			t.Fatalf("pooled digest not reset: nx = %d", nx.Int())
		}
	}
}
