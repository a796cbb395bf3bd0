package seal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/crypto/secret"
)

var fastArgon = Argon2{Time: 1, MemoryKiB: 1024, Threads: 1}

func TestPassphrase(t *testing.T) {
	root := rootkey.Generate()
	f, err := UnsafeNewPassphrase(root, []byte("correct horse"), fastArgon)
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

	// A wrong share (from another seal, or forged) among right ones is
	// refused alone; the right ones stay and open the seal.
	_, other, _ := NewShamir(rootkey.Generate(), 5, 3)
	k, ring = newKeeper()
	k.SubmitShare(shares[0])
	for _, wrong := range []string{other[1], other[2], SharePrefix + "CQ" + strings.Repeat("A", 42)} {
		if p, err := k.SubmitShare(wrong); err != ErrShare || !p.Sealed || p.Submitted != 1 {
			t.Fatalf("wrong share: %+v %v", p, err)
		}
	}
	k.SubmitShare(shares[1])
	if p, err := k.SubmitShare(shares[2]); err != nil || p.Sealed || ring.Sealed() {
		t.Fatalf("right shares after wrong ones: %+v %v", p, err)
	}
	if _, err := k.SubmitShare("klshare1-nonsense"); err == nil {
		t.Fatal("garbage share accepted")
	}
}

// TestShamirFileWithoutChecks: a seal file from before check values takes
// any share and refuses a wrong set as a whole, as it always did; its
// first unseal gives it check values for every share (the ones not
// submitted too), after which a wrong share is refused alone.
func TestShamirFileWithoutChecks(t *testing.T) {
	f, shares, err := NewShamir(rootkey.Generate(), 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := f.Shamir.Checks
	f.Shamir.Checks = nil
	path := filepath.Join(t.TempDir(), "root.seal")
	if err := f.Save(path); err != nil {
		t.Fatal(err)
	}
	_, other, _ := NewShamir(rootkey.Generate(), 5, 3)
	k, err := NewKeeper(path, rootkey.NewRing())
	if err != nil {
		t.Fatal(err)
	}
	k.SubmitShare(shares[0])
	k.SubmitShare(other[1])
	if p, err := k.SubmitShare(shares[2]); err != ErrOpen || p.Submitted != 0 {
		t.Fatalf("wrong set: %+v %v", p, err)
	}
	// A different share with an index already submitted fails at once.
	k.SubmitShare(shares[1])
	if p, err := k.SubmitShare(other[1]); err != ErrOpen || p.Submitted != 0 {
		t.Fatalf("conflicting share: %+v %v", p, err)
	}
	for _, s := range []string{shares[4], shares[1], shares[3]} {
		if _, err := k.SubmitShare(s); err != nil {
			t.Fatal(err)
		}
	}
	g, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Shamir.Checks) != 5 {
		t.Fatalf("the first unseal left %d check values", len(g.Shamir.Checks))
	}
	for i := range want {
		if !bytes.Equal(g.Shamir.Checks[i], want[i]) {
			t.Fatalf("check value of share %d differs from the one made at split", i+1)
		}
	}
	k, _ = NewKeeper(path, rootkey.NewRing())
	k.SubmitShare(shares[0])
	if p, err := k.SubmitShare(other[1]); err != ErrShare || p.Submitted != 1 {
		t.Fatalf("wrong share after the upgrade: %+v %v", p, err)
	}
}

func TestRotateAndRetire(t *testing.T) {
	root := rootkey.Generate()
	f, _ := UnsafeNewPassphrase(root, []byte("pw"), fastArgon)
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

// TestPassphraseMinimums: NewPassphrase refuses a short passphrase and
// Argon2id parameters below OWASP's minimum, and takes each of OWASP's
// equivalent minimum configurations.
func TestPassphraseMinimums(t *testing.T) {
	root := rootkey.Generate()
	long := []byte("correct horse battery")
	for _, tc := range []struct {
		pass []byte
		p    Argon2
		ok   bool
	}{
		{[]byte("x"), Argon2{Time: 3, MemoryKiB: 64 << 10, Threads: 4}, false},
		{[]byte("elevenchars"), Argon2{Time: 3, MemoryKiB: 64 << 10, Threads: 4}, false},
		{[]byte("été à l'ombr"), Argon2{Time: 2, MemoryKiB: 19 << 10, Threads: 1}, true}, // 12 characters, more bytes
		{long, Argon2{Time: 1, MemoryKiB: 8, Threads: 1}, false},
		{long, Argon2{Time: 1, MemoryKiB: 19 << 10, Threads: 1}, false},
		{long, Argon2{Time: 2, MemoryKiB: 19<<10 - 1, Threads: 1}, false},
		{long, Argon2{Time: 2, MemoryKiB: 19 << 10, Threads: 1}, true},
		{long, Argon2{Time: 1, MemoryKiB: 46 << 10, Threads: 1}, true},
		{long, Argon2{Time: 5, MemoryKiB: 7 << 10, Threads: 1}, true},
	} {
		_, err := NewPassphrase(root, tc.pass, tc.p)
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrWeak)) {
			t.Errorf("%q %+v: %v", tc.pass, tc.p, err)
		}
	}
}
