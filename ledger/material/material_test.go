package material

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/crypto/secret"
	"github.com/keyledger/keyledger/crypto/shred"
	"github.com/keyledger/keyledger/ledger/embedded"
)

// openStore opens a store on a fresh embedded server; shredDir "" puts the
// per-material keys in a bucket.
func openStore(t *testing.T, shredDir string) *Store {
	t.Helper()
	srv, err := embedded.Start(embedded.Options{DataDir: filepath.Join(t.TempDir(), "jetstream"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	s, err := Open(context.Background(), nc, Config{ShredDir: shredDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStoreRoundTripAndDestroy(t *testing.T) {
	for _, mode := range []string{"slot file", "bucket"} {
		t.Run(mode, func(t *testing.T) {
			dir := ""
			if mode == "slot file" {
				dir = t.TempDir()
			}
			s := openStore(t, dir)
			ctx := context.Background()
			root := rootkey.Generate()
			mat := secret.Random(32)
			wrapped := root.Wrap(mat, "m1")
			if err := s.Put(ctx, "m1", wrapped); err != nil {
				t.Fatal(err)
			}
			if err := s.Put(ctx, "m1", wrapped); err == nil {
				t.Fatal("put over live material succeeded")
			}
			got, err := s.Get(ctx, "m1")
			if err != nil || !bytes.Equal(got, wrapped) {
				t.Fatalf("get: %v", err)
			}
			e, _ := s.kv.Get(ctx, "m1")
			if !shred.IsSealed(e.Value()) || bytes.Contains(e.Value(), wrapped) {
				t.Fatal("the bucket holds the root-wrapped bytes unsealed")
			}
			if err := s.Destroy(ctx, "m1"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Get(ctx, "m1"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("get after destroy: %v", err)
			}
			if err := s.Destroy(ctx, "m1"); err != nil {
				t.Fatalf("second destroy: %v", err)
			}
			// The same id again (re-imported material keeps its id).
			if err := s.Put(ctx, "m1", wrapped); err != nil {
				t.Fatalf("put after destroy: %v", err)
			}
			if got, err := s.Get(ctx, "m1"); err != nil || !bytes.Equal(got, wrapped) {
				t.Fatalf("get after re-put: %v", err)
			}
		})
	}
}

// TestStoreShredsWhenTheBucketKeepsTheBytes destroys only the key, as a
// crash inside the bucket's own delete would leave things: the sealed bytes
// are still in the bucket, and useless.
func TestStoreShredsWhenTheBucketKeepsTheBytes(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	ctx := context.Background()
	root := rootkey.Generate()
	if err := s.Put(ctx, "m1", root.Wrap(secret.Random(32), "m1")); err != nil {
		t.Fatal(err)
	}
	e, _ := s.kv.Get(ctx, "m1")
	sealed := bytes.Clone(e.Value())
	key, _ := s.slots.Get("m1")
	keyBytes := bytes.Clone(key.Expose())
	if err := s.keys.Destroy(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "m1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get with the key destroyed: %v", err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, slotsFile)); bytes.Contains(data, keyBytes) {
		t.Fatal("the key is still in the slot file")
	}
	if _, err := root.Unwrap(sealed, "m1"); err == nil {
		t.Fatal("the root key alone opened the sealed bytes")
	}
}

func TestStoreReadsVersion1Material(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	root := rootkey.Generate()
	mat := secret.Random(32)
	legacy := root.Wrap(mat, "old")
	if _, err := s.kv.Create(ctx, "old", legacy); err != nil { // as written before version 2
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "old")
	if err != nil || !bytes.Equal(got, legacy) {
		t.Fatalf("get version 1: %v", err)
	}
	if err := s.Destroy(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Exists(ctx, "old"); ok {
		t.Fatal("version 1 material survived destroy")
	}
}

// A flipped bit in a live material's key slot must not destroy the key:
// Reclaim keeps the slot and says so (it used to be zeroed on open).
func TestStoreReclaimKeepsADamagedLiveSlot(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	ctx := context.Background()
	root := rootkey.Generate()
	if err := s.Put(ctx, "live", root.Wrap(secret.Random(32), "live")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	path := filepath.Join(dir, slotsFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[slotSize+slotKeyAt+3] ^= 0x10
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, dir)
	ids, err := s2.Reclaim(ctx, func(id string) bool { return id == "live" })
	if !errors.Is(err, ErrDamagedSlots) || len(ids) != 0 || !strings.Contains(err.Error(), "material live") {
		t.Fatalf("reclaim: %v, %v", ids, err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(after, data) {
		t.Fatal("the damaged slot of a live material was changed")
	}
}

func TestStoreReclaim(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	root := rootkey.Generate()
	for _, id := range []string{"live", "orphan"} {
		if err := s.Put(ctx, id, root.Wrap(secret.Random(32), id)); err != nil {
			t.Fatal(err)
		}
	}
	ids, err := s.Reclaim(ctx, func(id string) bool { return id == "live" })
	if err != nil || fmt.Sprint(ids) != "[orphan]" {
		t.Fatalf("reclaimed %v, %v", ids, err)
	}
	if ok, _ := s.Exists(ctx, "orphan"); ok {
		t.Fatal("the orphan survived")
	}
	if ok, _ := s.Exists(ctx, "live"); !ok {
		t.Fatal("live material was reclaimed")
	}
	// More orphans than a crash can leave: refuse, destroy nothing.
	for i := range MaxReclaim + 1 {
		s.Put(ctx, fmt.Sprint("o", i), []byte("w"))
	}
	if ids, err := s.Reclaim(ctx, func(id string) bool { return id == "live" }); !errors.Is(err, ErrTooManyOrphans) || len(ids) != 0 {
		t.Fatalf("reclaim of many: %v %v", ids, err)
	}
	if ok, _ := s.Exists(ctx, "o0"); !ok {
		t.Fatal("a refused reclaim destroyed material")
	}
}
