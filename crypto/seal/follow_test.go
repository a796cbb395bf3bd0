package seal

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/crypto/secret"
)

// copies are two instances' copies of one passphrase seal, unsealed.
func copies(t *testing.T) (a, b *Keeper, ra, rb *rootkey.Ring) {
	t.Helper()
	f, err := UnsafeNewPassphrase(rootkey.Generate(), []byte("shared"), fastArgon)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	open := func(name string) (*Keeper, *rootkey.Ring) {
		path := filepath.Join(dir, name)
		if err := f.Save(path); err != nil {
			t.Fatal(err)
		}
		r := rootkey.NewRing()
		k, err := NewKeeper(path, r)
		if err != nil {
			t.Fatal(err)
		}
		if err := k.UnsealPassphrase([]byte("shared")); err != nil {
			t.Fatal(err)
		}
		return k, r
	}
	a, ra = open("a.seal")
	b, rb = open("b.seal")
	return a, b, ra, rb
}

// TestFollowRotationAndRetirement: b follows a's copy after a rotated (it
// unwraps what a wraps under the new version, and wraps under it itself,
// also after reloading its file) and after a retired the old version (it
// no longer unwraps under it).
func TestFollowRotationAndRetirement(t *testing.T) {
	a, b, ra, rb := copies(t)
	mat := secret.Random(32)
	old, err := rb.WrapMaterial(mat, "m0")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Rotate(); err != nil {
		t.Fatal(err)
	}
	w2, _ := ra.WrapMaterial(mat, "m1")
	if _, err := rb.UnwrapMaterial(w2, "m1"); err == nil {
		t.Fatal("b unwrapped version 2 material before following")
	}
	raw, err := a.Export()
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := b.Follow(raw); err != nil || !changed {
		t.Fatalf("Follow after rotation: %v, changed %v", err, changed)
	}
	if got, err := rb.UnwrapMaterial(w2, "m1"); err != nil || !got.Equal(mat) {
		t.Fatalf("b unwraps a's new material: %v", err)
	}
	if w, _ := rb.WrapMaterial(mat, "m2"); rootkey.VersionOf(w) != 2 {
		t.Fatalf("b wraps under version %d, want 2", rootkey.VersionOf(w))
	}
	if changed, err := b.Follow(raw); err != nil || changed {
		t.Fatalf("Follow again: %v, changed %v", err, changed)
	}
	reloaded, _ := NewKeeper(b.path, rootkey.NewRing())
	if all, cur := reloaded.Versions(); len(all) != 2 || cur != 2 {
		t.Fatalf("b's file after Follow: versions %v, current %d", all, cur)
	}
	if err := a.Retire(1); err != nil {
		t.Fatal(err)
	}
	raw, _ = a.Export()
	if changed, err := b.Follow(raw); err != nil || !changed {
		t.Fatalf("Follow after retirement: %v, changed %v", err, changed)
	}
	if _, err := rb.UnwrapMaterial(old, "m0"); err == nil {
		t.Fatal("b still unwraps under the retired version")
	}
	if all, cur := b.Versions(); len(all) != 1 || cur != 2 {
		t.Fatalf("b after retirement: versions %v, current %d", all, cur)
	}
}

// TestFollowRefuses: a copy of another seal, an older copy, a forged
// version (not sealed under the KEK), and following while sealed.
func TestFollowRefuses(t *testing.T) {
	a, b, _, _ := copies(t)
	other, _, _, _ := copies(t)
	raw, _ := other.Export()
	if _, err := b.Follow(raw); !errors.Is(err, ErrOtherSeal) {
		t.Errorf("another seal: %v, want ErrOtherSeal", err)
	}
	stale, _ := a.Export()
	if _, _, err := b.Rotate(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Follow(stale); err == nil {
		t.Error("followed an older copy")
	}
	// A version sealed under another KEK, spliced into a's copy.
	if _, _, err := a.Rotate(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := other.Rotate(); err != nil {
		t.Fatal(err)
	}
	forged := *a.file
	forged.Versions = append([]Version(nil), a.file.Versions[0], other.file.Versions[1])
	forged.Versions[1].Version = 3
	forged.Current = 3
	raw, _ = jsonOf(&forged)
	if _, err := b.Follow(raw); !errors.Is(err, ErrOpen) {
		t.Errorf("forged version: %v, want refused", err)
	}
	sealed, err := NewKeeper(b.path, rootkey.NewRing())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ = a.Export()
	if _, err := sealed.Follow(raw); !errors.Is(err, rootkey.ErrSealed) {
		t.Errorf("sealed keeper: %v, want ErrSealed", err)
	}
}

func jsonOf(f *File) ([]byte, error) { return json.Marshal(f) }
