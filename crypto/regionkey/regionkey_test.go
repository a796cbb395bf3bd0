package regionkey

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyledger/keyledger/crypto/secret"
)

func TestSealOpen(t *testing.T) {
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublic(k.PublicText())
	if err != nil {
		t.Fatal(err)
	}
	mat := secret.Random(32)
	info := []byte("keyledger replica material v1\nus-east-1\neu-west-1\nmrk-1\nm1")
	sealed, err := Seal(pub, mat, info)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, mat.Expose()) {
		t.Fatal("material in the clear")
	}
	got, err := k.Open(sealed, info)
	if err != nil || !got.Equal(mat) {
		t.Fatalf("Open: %v", err)
	}
	// Another message's info, another key, a flipped byte: nothing opens.
	if _, err := k.Open(sealed, append(bytes.Clone(info), 'x')); err != ErrOpen {
		t.Fatal("opened under another info")
	}
	other, _ := Generate()
	if _, err := other.Open(sealed, info); err != ErrOpen {
		t.Fatal("opened by another key")
	}
	for i := range sealed {
		b := bytes.Clone(sealed)
		b[i] ^= 1
		if _, err := k.Open(b, info); err != ErrOpen {
			t.Fatalf("byte %d flipped and opened", i)
		}
	}
}

func TestFileAndRedaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "region.key")
	k, created, err := LoadOrCreate(path)
	if err != nil || !created {
		t.Fatal(created, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", st.Mode(), err)
	}
	again, created, err := LoadOrCreate(path)
	if err != nil || created || !bytes.Equal(again.Public(), k.Public()) {
		t.Fatal("reloaded a different key")
	}
	data, _ := os.ReadFile(path)
	if s := fmt.Sprintf("%v %+v %s", k, k, k); strings.Contains(s, strings.TrimSpace(string(data))) || !strings.Contains(s, "REDACTED") {
		t.Fatalf("printed: %s", s)
	}
}
