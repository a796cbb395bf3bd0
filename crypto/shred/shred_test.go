package shred

import (
	"bytes"
	"errors"
	"testing"

	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/crypto/secret"
)

func TestSealOpen(t *testing.T) {
	root := rootkey.Generate()
	mat := secret.Random(32)
	wrapped := root.Wrap(mat, "m1")
	key := NewKey()
	sealed := Seal(key, "m1", wrapped)
	if !IsSealed(sealed) || IsSealed(wrapped) {
		t.Fatal("IsSealed does not tell the formats apart")
	}
	if len(sealed) != len(wrapped)+Overhead {
		t.Fatalf("sealed %d bytes, want %d", len(sealed), len(wrapped)+Overhead)
	}
	if bytes.Contains(sealed, wrapped) {
		t.Fatal("the root-wrapped bytes are visible in the sealed blob")
	}
	got, err := Open(key, "m1", sealed)
	if err != nil || !bytes.Equal(got, wrapped) {
		t.Fatalf("open: %v", err)
	}
	back, err := root.Unwrap(got, "m1")
	if err != nil || !back.Equal(mat) {
		t.Fatalf("unwrap after open: %v", err)
	}
	// The root key alone does nothing with the sealed blob.
	if _, err := root.Unwrap(sealed, "m1"); err == nil {
		t.Fatal("the root key alone opened a sealed blob")
	}
	if _, err := root.Unwrap(sealed[len(Prefix):], "m1"); err == nil {
		t.Fatal("the root key alone opened a sealed blob's body")
	}
}

func TestOpenFails(t *testing.T) {
	key := NewKey()
	sealed := Seal(key, "m1", []byte("root-wrapped bytes"))
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	zero := secret.New(make([]byte, KeySize))
	tests := []struct {
		name string
		key  secret.Bytes
		id   string
		blob []byte
	}{
		{"other key", NewKey(), "m1", sealed},
		{"zeroed key", zero, "m1", sealed},
		{"short key", secret.Random(16), "m1", sealed},
		{"other id", key, "m2", sealed},
		{"flipped byte", key, "m1", flipped},
		{"no prefix", key, "m1", sealed[len(Prefix):]},
		{"truncated", key, "m1", sealed[:len(Prefix)+10]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if out, err := Open(tt.key, tt.id, tt.blob); !errors.Is(err, ErrOpen) || out != nil {
				t.Fatalf("got %q, %v; want ErrOpen", out, err)
			}
		})
	}
}
