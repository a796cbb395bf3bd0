package ciphertext

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
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
		if (len(h.KeyID) != 36 && !strings.HasPrefix(h.KeyID, "mrk-")) || len(h.MaterialID) != 64 {
			t.Fatalf("bad header %+v", h)
		}
		if pt, err := Open(blob, m, nil); err == nil && string(pt) != "seed" {
			t.Fatalf("forged blob opened to %q", pt)
		}
	})
}

// A multi-Region key's id travels in the header as its own version, so
// the blob names the same key in every region, and never a UUID key whose
// 16 bytes happen to match.
func TestMultiRegionKeyID(t *testing.T) {
	m := secret.Random(32)
	mrk := Header{KeyID: "mrk-1234abcd12ab34cd56ef1234567890ab", MaterialID: strings.Repeat("cd", 32)}
	blob := Seal(mrk, m, []byte("mrk data"), nil)
	if blob[0] != versionMRK {
		t.Fatalf("version byte %#x", blob[0])
	}
	h, err := ParseHeader(blob)
	if err != nil || h != mrk {
		t.Fatalf("ParseHeader = %+v, %v", h, err)
	}
	if pt, err := Open(blob, m, nil); err != nil || string(pt) != "mrk data" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	// The same 16 bytes as a UUID key: a different header, which the
	// sealed body does not open under.
	b := bytes.Clone(blob)
	b[0] = version1
	if h, _ := ParseHeader(b); h.KeyID != "1234abcd-12ab-34cd-56ef-1234567890ab" {
		t.Fatalf("as version 1: %s", h.KeyID)
	}
	if _, err := Open(b, m, nil); err != ErrInvalid {
		t.Fatal("an mrk blob opened as a UUID key's")
	}
	for _, bad := range []string{"mrk-1234", "mrk-1234ABCD12ab34cd56ef1234567890ab", "mrk-zz34abcd12ab34cd56ef1234567890ab"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s sealed", bad)
				}
			}()
			Seal(Header{KeyID: bad, MaterialID: mrk.MaterialID}, m, nil, nil)
		}()
	}
}

// TestHeaderBytes pins the header's bytes for the ids a header may name,
// and refuses malformed ones (the decoding is the package's own, so it is
// held to encoding/hex here).
func TestHeaderBytes(t *testing.T) {
	mat := strings.Repeat("0f", 32)
	for _, tc := range []struct {
		keyID string
		want  string // hex of version || id; "" when refused
	}{
		{"1234abcd-12ab-34cd-56ef-1234567890ab", "011234abcd12ab34cd56ef1234567890ab"},
		{"1234ABCD-12AB-34CD-56EF-1234567890AB", "011234abcd12ab34cd56ef1234567890ab"},
		{"mrk-1234abcd12ab34cd56ef1234567890ab", "021234abcd12ab34cd56ef1234567890ab"},
		{"mrk-1234ABCD12ab34cd56ef1234567890ab", ""},
		{"mrk-1234abcd12ab34cd56ef1234567890a", ""},
		{"1234abcd-12ab-34cd-56ef-1234567890ag", ""},
		{"1234abcd-12ab-34cd-56ef_1234567890ab", ""},
		{"1234abcd-12ab-34cd-56ef-1234567890abc", ""},
		{"", ""},
	} {
		got, err := Header{KeyID: tc.keyID, MaterialID: mat}.appendTo(nil)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%q: accepted as %x", tc.keyID, got)
			}
			continue
		}
		if err != nil || hex.EncodeToString(got) != tc.want+mat {
			t.Errorf("%q: got %x, %v; want %s%s", tc.keyID, got, err, tc.want, mat)
		}
	}
	for _, m := range []string{strings.Repeat("0f", 31), strings.Repeat("0f", 31) + "0g", strings.Repeat("0F", 32) + "00"} {
		if got, err := (Header{KeyID: "1234abcd-12ab-34cd-56ef-1234567890ab", MaterialID: m}).appendTo(nil); err == nil {
			t.Errorf("material %q accepted as %x", m, got)
		}
	}
	for range 1000 {
		var b [16]byte
		rand.Read(b[:])
		want := hex.EncodeToString(b[:])
		var got [16]byte
		if !decodeHex(got[:], want) || hex.EncodeToString(got[:]) != want || !decodeHex(got[:], strings.ToUpper(want)) || hex.EncodeToString(got[:]) != want {
			t.Fatalf("decodeHex(%s) = %x", want, got)
		}
	}
}
