package material

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func openTestSlots(t *testing.T, dir string) (*slotFile, int) {
	t.Helper()
	s, repaired, err := openSlots(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, repaired
}

func fileSize(t *testing.T, dir string) int64 {
	t.Helper()
	fi, err := os.Stat(filepath.Join(dir, slotsFile))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func fileBytes(t *testing.T, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, slotsFile))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSlotsCreateGetReopen(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTestSlots(t, dir)
	k1, err := s.Create("m1")
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := s.Create("m2")
	if k1.Equal(k2) {
		t.Fatal("two materials got the same key")
	}
	if _, err := s.Create("m1"); !errors.Is(err, errSlotExists) {
		t.Fatalf("second create of m1: %v", err)
	}
	if got, err := s.Get("m1"); err != nil || !got.Equal(k1) {
		t.Fatalf("get m1: %v", err)
	}
	if _, err := s.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}
	if fileSize(t, dir) != 3*slotSize {
		t.Fatalf("file is %d bytes, want header and two slots", fileSize(t, dir))
	}
	s.Close()
	s2, repaired := openTestSlots(t, dir)
	if repaired != 0 {
		t.Fatalf("%d slots repaired in an intact file", repaired)
	}
	if got, err := s2.Get("m2"); err != nil || !got.Equal(k2) {
		t.Fatalf("get m2 after reopen: %v", err)
	}
	if ids := s2.IDs(); fmt.Sprint(ids) != "[m1 m2]" {
		t.Fatalf("ids after reopen: %v", ids)
	}
}

func TestSlotsDestroyZeroesAndReuses(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTestSlots(t, dir)
	var keys [][]byte
	for i := range 4 {
		k, err := s.Create(fmt.Sprint("m", i))
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, bytes.Clone(k.Expose()))
	}
	if err := s.Destroy("m1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Destroy("m1"); err != nil { // idempotent
		t.Fatal(err)
	}
	data := fileBytes(t, dir)
	if bytes.Contains(data, keys[1]) || bytes.Contains(data, []byte("m1")) {
		t.Fatal("the destroyed slot's key or id is still in the file")
	}
	if !bytes.Equal(data[2*slotSize:3*slotSize], make([]byte, slotSize)) {
		t.Fatal("the destroyed slot is not all zeros")
	}
	if !bytes.Contains(data, keys[2]) {
		t.Fatal("a live key is missing from the file")
	}
	if _, err := s.Get("m1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get destroyed: %v", err)
	}
	// Churn: the file grows with live materials, not with history.
	for i := range 100 {
		id := fmt.Sprint("churn", i)
		if _, err := s.Create(id); err != nil {
			t.Fatal(err)
		}
		if err := s.Destroy(id); err != nil {
			t.Fatal(err)
		}
	}
	if fileSize(t, dir) != 5*slotSize {
		t.Fatalf("file is %d bytes after churn, want %d", fileSize(t, dir), 5*slotSize)
	}
	// The freed slot is taken first.
	if _, err := s.Create("new"); err != nil {
		t.Fatal(err)
	}
	if data := fileBytes(t, dir); !bytes.Contains(data[2*slotSize:3*slotSize], []byte("new")) {
		t.Fatal("the lowest free slot was not reused")
	}
	// Trailing free slots go when the file is reopened.
	s.Destroy("m3")
	s.Destroy("m2")
	s.Close()
	s2, _ := openTestSlots(t, dir)
	if fileSize(t, dir) != 3*slotSize || fmt.Sprint(s2.IDs()) != "[m0 new]" {
		t.Fatalf("after reopen: %d bytes, ids %v", fileSize(t, dir), s2.IDs())
	}
}

func TestSlotsDamagedAreKeptUntilTheLedgerSaysWhose(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTestSlots(t, dir)
	for _, id := range []string{"a", "b", "c", "d"} {
		if _, err := s.Create(id); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	path := filepath.Join(dir, slotsFile)
	data := fileBytes(t, dir)
	// Slot of "b": half overwritten by zeros (a zeroing cut short).
	clear(data[2*slotSize+slotSize/2 : 3*slotSize])
	// Slot of "c": one bit flipped in the key of a live material.
	data[3*slotSize+slotKeyAt] ^= 1
	liveC := bytes.Clone(data[3*slotSize : 4*slotSize])
	// Slot of "d": the magic flipped, so no id is legible.
	data[4*slotSize] ^= 1
	// A torn extension: 40 stray bytes after the last slot.
	data = append(data, bytes.Repeat([]byte{0xAB}, 40)...)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s2, repaired := openTestSlots(t, dir)
	if repaired != 1 {
		t.Fatalf("repaired %d, want 1 (the torn tail)", repaired)
	}
	if fmt.Sprint(s2.IDs()) != "[a]" || fmt.Sprint(s2.Damaged()) != "[{2 b} {3 c} {4 }]" {
		t.Fatalf("ids %v, damaged %v", s2.IDs(), s2.Damaged())
	}
	after := fileBytes(t, dir)
	if !bytes.Equal(after[3*slotSize:4*slotSize], liveC) {
		t.Fatal("opening the file changed a damaged slot")
	}
	if bytes.Contains(after, bytes.Repeat([]byte{0xAB}, 8)) { // a run: one 0xAB may occur in a random key
		t.Fatal("torn tail left in the file")
	}
	if _, err := s2.Get("c"); !errors.Is(err, errSlotBroken) {
		t.Fatalf("get of a damaged slot: %v", err)
	}
	// New keys never land in a damaged slot.
	if _, err := s2.Create("e"); err != nil {
		t.Fatal(err)
	}
	if after := fileBytes(t, dir); !bytes.Equal(after[3*slotSize:4*slotSize], liveC) {
		t.Fatal("create overwrote a damaged slot")
	}
	// The ledger knows c as live, b not: b is zeroed, c and the illegible d kept.
	zeroed, err := s2.ResolveDamaged(func(id string) bool { return id == "a" || id == "c" || id == "e" })
	if err != nil || fmt.Sprint(zeroed) != "[b]" || fmt.Sprint(s2.Damaged()) != "[{3 c} {4 }]" {
		t.Fatalf("resolved: zeroed %v, %v; damaged %v", zeroed, err, s2.Damaged())
	}
	if after := fileBytes(t, dir); !bytes.Equal(after[2*slotSize:3*slotSize], make([]byte, slotSize)) {
		t.Fatal("the damaged slot of a dead material was not zeroed")
	}
	// Deleting c reaches its damaged slot.
	if err := s2.Destroy("c"); err != nil {
		t.Fatal(err)
	}
	if after := fileBytes(t, dir); !bytes.Equal(after[3*slotSize:4*slotSize], make([]byte, slotSize)) {
		t.Fatal("destroy left a damaged slot of its material")
	}
}

func TestSlotsRefuseWhatTheyCannotTrust(t *testing.T) {
	t.Run("bad header", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, slotsFile), bytes.Repeat([]byte{1}, slotSize), 0o600)
		if _, _, err := openSlots(dir); err == nil {
			t.Fatal("opened a file with a bad header")
		}
	})
	t.Run("duplicate id", func(t *testing.T) {
		dir := t.TempDir()
		s, _ := openTestSlots(t, dir)
		s.Create("a")
		s.Close()
		data := fileBytes(t, dir)
		data = append(data, data[slotSize:2*slotSize]...)
		os.WriteFile(filepath.Join(dir, slotsFile), data, 0o600)
		if _, _, err := openSlots(dir); err == nil {
			t.Fatal("opened a file holding one id twice")
		}
	})
	t.Run("id too long", func(t *testing.T) {
		s, _ := openTestSlots(t, t.TempDir())
		if _, err := s.Create(string(bytes.Repeat([]byte("x"), slotIDMax+1))); err == nil {
			t.Fatal("created a slot for an id that does not fit")
		}
	})
	t.Run("slot changed after open", func(t *testing.T) {
		dir := t.TempDir()
		s, _ := openTestSlots(t, dir)
		s.Create("a")
		f, _ := os.OpenFile(filepath.Join(dir, slotsFile), os.O_RDWR, 0)
		f.WriteAt([]byte{0xFF}, slotSize+slotKeyAt)
		f.Close()
		if _, err := s.Get("a"); !errors.Is(err, errSlotBroken) {
			t.Fatalf("get of a damaged slot: %v", err)
		}
	})
}

func TestSlotFileMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shred")
	openTestSlots(t, dir)
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, slotsFile): 0o600} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != want {
			t.Fatalf("%s: mode %v, want %v (%v)", path, fi.Mode().Perm(), want, err)
		}
	}
}
