package seal

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/crypto/secret"
)

var fastArgon = Argon2{Time: 1, MemoryKiB: 1024, Threads: 1}

func TestPassphrase(t *testing.T) {
	root := rootkey.Generate()
	f, err := NewPassphrase(root, []byte("correct horse"), fastArgon)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "root.seal")
	if err := f.Save(path); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, root.Bytes().Expose()) {
		t.Fatal("the seal file holds the plaintext root key")
	}
	ring := rootkey.NewRing()
	k, err := NewKeeper(path, ring)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.UnsealPassphrase([]byte("wrong horse")); err != ErrOpen || !ring.Sealed() {
		t.Fatalf("wrong passphrase: %v, sealed %v", err, ring.Sealed())
	}
	if err := k.UnsealPassphrase([]byte("correct horse")); err != nil || ring.Sealed() {
		t.Fatalf("right passphrase: %v", err)
	}
	mat := secret.Random(32)
	w := root.Wrap(mat, "m")
	if got, err := ring.UnwrapMaterial(w, "m"); err != nil || !got.Equal(mat) {
		t.Fatalf("the unsealed ring is not the root key: %v", err)
	}
}

func TestShamirUnseal(t *testing.T) {
	root := rootkey.Generate()
	f, shares, err := NewShamir(root, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "root.seal")
	if err := f.Save(path); err != nil {
		t.Fatal(err)
	}
	newKeeper := func() (*Keeper, *rootkey.Ring) {
		ring := rootkey.NewRing()
		k, err := NewKeeper(path, ring)
		if err != nil {
			t.Fatal(err)
		}
		return k, ring
	}

	k, ring := newKeeper()
	for i, s := range shares[:2] {
		p, err := k.SubmitShare(s)
		if err != nil || !p.Sealed || p.Submitted != i+1 || p.Threshold != 3 {
			t.Fatalf("share %d: %+v %v", i, p, err)
		}
	}
	if p, _ := k.SubmitShare(shares[1]); p.Submitted != 2 {
		t.Fatalf("a repeated share counted: %+v", p)
	}
	if !ring.Sealed() {
		t.Fatal("threshold-1 shares opened the ring")
	}
	if p, err := k.SubmitShare(shares[4]); err != nil || p.Sealed || ring.Sealed() {
		t.Fatalf("threshold shares: %+v %v", p, err)
	}

	// A wrong share (from another seal) among right ones: refused as a
	// whole, progress reset.
	_, other, _ := NewShamir(rootkey.Generate(), 5, 3)
	k, ring = newKeeper()
	k.SubmitShare(shares[0])
	k.SubmitShare(other[1])
	p, err := k.SubmitShare(shares[2])
	if err != ErrOpen || !p.Sealed || p.Submitted != 0 || !ring.Sealed() {
		t.Fatalf("wrong share: %+v %v", p, err)
	}
	// A different share with an index already submitted fails at once.
	k.SubmitShare(shares[1])
	if p, err := k.SubmitShare(other[1]); err != ErrOpen || p.Submitted != 0 {
		t.Fatalf("conflicting share: %+v %v", p, err)
	}
	if _, err := k.SubmitShare("klshare1-nonsense"); err == nil {
		t.Fatal("garbage share accepted")
	}
}

func TestRotateAndRetire(t *testing.T) {
	root := rootkey.Generate()
	f, _ := NewPassphrase(root, []byte("pw"), fastArgon)
	path := filepath.Join(t.TempDir(), "root.seal")
	f.Save(path)
	ring := rootkey.NewRing()
	k, _ := NewKeeper(path, ring)
	if err := k.UnsealPassphrase([]byte("pw")); err != nil {
		t.Fatal(err)
	}
	mat := secret.Random(32)
	w1, _ := ring.WrapMaterial(mat, "m")
	from, to, err := k.Rotate()
	if err != nil || from != 1 || to != 2 {
		t.Fatalf("rotate: %d→%d %v", from, to, err)
	}
	// A restart opens both versions from the file.
	ring2 := rootkey.NewRing()
	k2, _ := NewKeeper(path, ring2)
	if err := k2.UnsealPassphrase([]byte("pw")); err != nil || ring2.Current() != 2 {
		t.Fatalf("reopen after rotate: %v current %d", err, ring2.Current())
	}
	if _, err := ring2.UnwrapMaterial(w1, "m"); err != nil {
		t.Fatalf("version 1 material after restart: %v", err)
	}
	if err := k2.Retire(1); err != nil {
		t.Fatal(err)
	}
	if all, cur := k2.Versions(); len(all) != 1 || cur != 2 {
		t.Fatalf("after retire: %v current %d", all, cur)
	}
	if _, err := ring2.UnwrapMaterial(w1, "m"); err == nil {
		t.Fatal("retired version still unwraps")
	}
	if err := k2.Retire(2); err == nil {
		t.Fatal("retired the current version")
	}
}
