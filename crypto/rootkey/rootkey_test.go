package rootkey

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyledger/keyledger/crypto/secret"
)

func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "root.key")
	k1, created, err := LoadOrCreate(path)
	if err != nil || !created {
		t.Fatalf("first LoadOrCreate: created=%v err=%v", created, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, %v", st.Mode(), err)
	}
	k2, created, err := LoadOrCreate(path)
	if err != nil || created {
		t.Fatalf("second LoadOrCreate: created=%v err=%v", created, err)
	}
	if k1.Fingerprint() != k2.Fingerprint() {
		t.Fatal("reloaded key differs")
	}
	if s := fmt.Sprintf("%v %+v %#v", k1, k1, k1); strings.Contains(s, string(k1.k.Expose())) || !strings.Contains(s, "REDACTED") {
		t.Fatalf("root key printed: %s", s)
	}
}

func TestLoadFormats(t *testing.T) {
	dir := t.TempDir()
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = byte(i)
	}
	files := map[string]string{
		"raw": string(raw),
		"hex": "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
		"b64": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
	}
	var fps []string
	for name, content := range files {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		k, err := Load(p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		fps = append(fps, k.Fingerprint())
	}
	if fps[0] != fps[1] || fps[1] != fps[2] {
		t.Fatalf("formats disagree: %v", fps)
	}
	p := filepath.Join(dir, "short")
	os.WriteFile(p, []byte("abc"), 0o600)
	if _, err := Load(p); err == nil {
		t.Fatal("short key accepted")
	}
}

func TestWrapUnwrap(t *testing.T) {
	k := Generate()
	m := secret.Random(32)
	w := k.Wrap(m, "mat-1")
	got, err := k.Unwrap(w, "mat-1")
	if err != nil || !got.Equal(m) {
		t.Fatalf("Unwrap: %v", err)
	}
	if _, err := k.Unwrap(w, "mat-2"); err != ErrUnwrap {
		t.Fatal("unwrapped under the wrong material id")
	}
	if _, err := Generate().Unwrap(w, "mat-1"); err != ErrUnwrap {
		t.Fatal("unwrapped under the wrong root key")
	}
}

func TestRingVersions(t *testing.T) {
	k1, k2 := Generate(), Generate()
	r := NewRing()
	mat := secret.Random(32)
	if _, err := r.WrapMaterial(mat, "m"); err != ErrSealed {
		t.Fatalf("sealed ring wrapped: %v", err)
	}
	r.Install(map[uint32]Wrapper{1: k1}, 1)
	w1, err := r.WrapMaterial(mat, "m")
	if err != nil || VersionOf(w1) != 1 {
		t.Fatalf("version 1 wrap: %v, version %d", err, VersionOf(w1))
	}
	if _, err := k1.Unwrap(w1, "m"); err != nil {
		t.Fatal("version 1 is not the plain Key format")
	}
	r.Add(2, k2)
	w2, _ := r.WrapMaterial(mat, "m")
	if VersionOf(w2) != 2 {
		t.Fatalf("new material under version %d, want 2", VersionOf(w2))
	}
	for _, w := range [][]byte{w1, w2} {
		got, err := r.UnwrapMaterial(w, "m")
		if err != nil || !got.Equal(mat) {
			t.Fatalf("unwrap version %d: %v", VersionOf(w), err)
		}
	}
	r.Retire(2) // current: refused
	r.Retire(1)
	if _, err := r.UnwrapMaterial(w1, "m"); err != ErrUnwrap {
		t.Fatalf("retired version still unwraps: %v", err)
	}
	if got := r.Versions(); len(got) != 1 || got[0] != 2 {
		t.Fatalf("versions %v, want [2]", got)
	}
}
