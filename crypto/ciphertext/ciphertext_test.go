package ciphertext

import (
	"bytes"
	"strings"
	"testing"

	"github.com/keyledger/keyledger/crypto/secret"
)

var testHeader = Header{
	KeyID:      "1234abcd-12ab-34cd-56ef-1234567890ab",
	MaterialID: strings.Repeat("ab", 32),
}

func TestSealOpen(t *testing.T) {
	m := secret.Random(32)
	ctx := map[string]string{"purpose": "test", "tenant": "a"}
	blob := Seal(testHeader, m, []byte("secret data"), ctx)
	if len(blob) != len("secret data")+Overhead {
		t.Fatalf("blob length %d", len(blob))
	}
	h, err := ParseHeader(blob)
	if err != nil || h != testHeader {
		t.Fatalf("ParseHeader = %+v, %v", h, err)
	}
	pt, err := Open(blob, m, map[string]string{"tenant": "a", "purpose": "test"})
	if err != nil || string(pt) != "secret data" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	bad := []map[string]string{nil, {"purpose": "test"}, {"purpose": "test", "tenant": "b"}, {"purpose": "test", "tenant": "a", "x": ""}}
	for _, c := range bad {
		if _, err := Open(blob, m, c); err != ErrInvalid {
			t.Fatalf("context %v opened", c)
		}
	}
	// Ambiguity: {"a":"bc"} and {"ab":"c"} must not collide.
	b2 := Seal(testHeader, m, []byte("x"), map[string]string{"a": "bc"})
	if _, err := Open(b2, m, map[string]string{"ab": "c"}); err != ErrInvalid {
		t.Fatal("context encoding is ambiguous")
	}
}

func TestTamperedHeaderRejected(t *testing.T) {
	m := secret.Random(32)
	blob := Seal(testHeader, m, []byte("data"), nil)
	for i := 0; i < headerSize; i++ {
		b := bytes.Clone(blob)
		b[i] ^= 0x40
		if _, err := Open(b, m, nil); err != ErrInvalid {
			t.Fatalf("header byte %d tampered but opened", i)
		}
	}
	if _, err := ParseHeader(blob[:Overhead-1]); err != ErrInvalid {
		t.Fatal("short blob parsed")
	}
}

func FuzzParseAndOpen(f *testing.F) {
	m := secret.New(bytes.Repeat([]byte{7}, 32))
	f.Add(Seal(testHeader, m, []byte("seed"), nil))
	f.Add([]byte{1, 2, 3})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, blob []byte) {
		h, err := ParseHeader(blob)
		if err != nil {
			if _, err := Open(blob, m, nil); err == nil {
				t.Fatal("opened a blob whose header does not parse")
			}
			return
		}
		if len(h.KeyID) != 36 || len(h.MaterialID) != 64 {
			t.Fatalf("bad header %+v", h)
		}
		if pt, err := Open(blob, m, nil); err == nil && string(pt) != "seed" {
			t.Fatalf("forged blob opened to %q", pt)
		}
	})
}
