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
	s, _ := openReopenable(t, shredDir)
	return s
}

// openReopenable is openStore, and a function that opens the store again
// on the same server (as a restart would, the buckets kept).
func openReopenable(t *testing.T, shredDir string) (*Store, func() *Store) {
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
	open := func() *Store {
		s, err := Open(context.Background(), nc, Config{ShredDir: shredDir})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	return open(), open
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
			e, _ := s.kv[0].Get(ctx, "m1")
			if !shred.IsSealed(e.Value()) || bytes.Contains(e.Value(), wrapped) {
				t.Fatal("the bucket holds the root-wrapped bytes unsealed")
			}
			// The second copy holds the same sealed bytes, and the same key.
			c, _ := s.kv[1].Get(ctx, "m1")
			k0, err0 := s.keys[0].Get(ctx, "m1")
			k1, err1 := s.keys[1].Get(ctx, "m1")
			if c == nil || !bytes.Equal(c.Value(), e.Value()) || err0 != nil || err1 != nil || !k0.Equal(k1) {
				t.Fatal("the second copy does not hold the material")
			}
			if err := s.Destroy(ctx, "m1"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Get(ctx, "m1"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("get after destroy: %v", err)
			}
			for i := range 2 {
				if _, err := s.keys[i].Get(ctx, "m1"); !errors.Is(err, ErrNotFound) {
					t.Fatalf("the %s of the key survived destroy: %v", copyNames[i], err)
				}
				if _, err := s.kv[i].Get(ctx, "m1"); err == nil {
					t.Fatalf("the %s of the sealed bytes survived destroy", copyNames[i])
				}
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
	e, _ := s.kv[0].Get(ctx, "m1")
	sealed := bytes.Clone(e.Value())
	key, _ := s.slots[0].Get("m1")
	keyBytes := bytes.Clone(key.Expose())
	for _, i := range []int{1, 0} {
		if err := s.keys[i].Destroy(ctx, "m1"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Get(ctx, "m1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get with the key destroyed: %v", err)
	}
	for _, name := range []string{slotsFile, copySlotsFile} {
		if data, _ := os.ReadFile(filepath.Join(dir, name)); bytes.Contains(data, keyBytes) {
			t.Fatalf("the key is still in %s", name)
		}
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
	if _, err := s.kv[0].Create(ctx, "old", legacy); err != nil { // as written before version 2
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
// Reclaim keeps the slot, Get opens the material with the second copy of
// its key, and Check rewrites the slot and then zeroes the damaged one.
// With both copies of the key damaged, Check names the material and every
// part, and does not call it deleted.
func TestStoreSurvivesADamagedSlot(t *testing.T) {
	dir := t.TempDir()
	s, reopen := openReopenable(t, dir)
	ctx := context.Background()
	root := rootkey.Generate()
	wrapped := root.Wrap(secret.Random(32), "live")
	if err := s.Put(ctx, "live", wrapped); err != nil {
		t.Fatal(err)
	}
	s.Close()
	flipKey := func(name string) []byte {
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		at := bytes.Index(data, []byte("KLS1\x04live"))
		if at < 0 || at%slotSize != 0 {
			t.Fatalf("no slot holds the material in %s", name)
		}
		data[at+slotKeyAt+3] ^= 0x10
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return data
	}
	damaged := flipKey(slotsFile)
	s2 := reopen()
	live := func(id string) bool { return id == "live" }
	if ids, err := s2.Reclaim(ctx, live); err != nil || len(ids) != 0 {
		t.Fatalf("reclaim: %v, %v", ids, err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, slotsFile)); !bytes.Equal(after, damaged) {
		t.Fatal("reclaim changed the damaged slot of a live material")
	}
	if got, err := s2.Exists(ctx, "live"); !got || err != nil {
		t.Fatalf("exists with one copy of the key damaged: %v %v", got, err)
	}
	res, err := s2.Check(ctx, map[string][]string{"live": {Commitment(wrapped)}})
	if err != nil || len(res.Unreadable) != 0 || len(res.Repaired["live"]) != 1 || res.Dropped != 1 {
		t.Fatalf("check: %+v %v", res, err)
	}
	if k, err := s2.slots[0].Get("live"); err != nil || k.Len() != shred.KeySize || len(s2.slots[0].Damaged()) != 0 {
		t.Fatalf("the first slot file was not repaired: %v, damaged %v", err, s2.slots[0].Damaged())
	}
	s2.Close()

	// Both copies of the key damaged: lost here, said so.
	flipKey(slotsFile)
	flipKey(copySlotsFile)
	s3 := reopen()
	if _, err := s3.Get(ctx, "live"); !errors.Is(err, ErrUnreadable) || errors.Is(err, ErrNotFound) ||
		!strings.Contains(err.Error(), "slot fails its checksum") || !strings.Contains(err.Error(), "not deleted") {
		t.Fatalf("get with both keys damaged: %v", err)
	}
	res, err = s3.Check(ctx, map[string][]string{"live": {Commitment(wrapped)}})
	if err != nil || len(res.Unreadable) != 1 || res.Unreadable[0].ID != "live" || res.Dropped != 0 {
		t.Fatalf("check: %+v %v", res, err)
	}
}

// TestStoreSurvivesALostCopy: the sealed bytes gone from one bucket (as
// nats-server leaves a block it cut at a bad record) or replaced by other
// bytes are served from the other copy and rewritten.
func TestStoreSurvivesALostCopy(t *testing.T) {
	for _, mode := range []string{"slot file", "bucket"} {
		t.Run(mode, func(t *testing.T) {
			dir := ""
			if mode == "slot file" {
				dir = t.TempDir()
			}
			s := openStore(t, dir)
			ctx := context.Background()
			root := rootkey.Generate()
			wrapped := root.Wrap(secret.Random(32), "m")
			if err := s.Put(ctx, "m", wrapped); err != nil {
				t.Fatal(err)
			}
			for c := range 2 {
				if err := s.kv[c].Purge(ctx, "m"); err != nil {
					t.Fatal(err)
				}
				got, err := s.GetChecked(ctx, "m", Commitment(wrapped))
				if err != nil || !bytes.Equal(got, wrapped) {
					t.Fatalf("%s gone: %v", copyNames[c], err)
				}
				if e, err := s.kv[c].Get(ctx, "m"); err != nil || !shred.IsSealed(e.Value()) {
					t.Fatalf("%s was not rewritten: %v", copyNames[c], err)
				}
			}
			// Other bytes that open (a stale rewrap) lose to the committed ones.
			key, _ := s.keys[0].Get(ctx, "m")
			other := root.Wrap(secret.Random(32), "m")
			s.kv[0].Put(ctx, "m", shred.Seal(key, "m", other))
			res, err := s.Check(ctx, map[string][]string{"m": {Commitment(wrapped)}})
			if err != nil || len(res.Repaired["m"]) != 1 || len(res.Unreadable) != 0 {
				t.Fatalf("check: %+v %v", res, err)
			}
			if got, err := s.Get(ctx, "m"); err != nil || !bytes.Equal(got, wrapped) {
				t.Fatalf("after check: %v", err)
			}
		})
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

// TestStoreRestore: a material no copy opens is put back from other bytes
// only if they match the commitment, under a fresh key in both copies;
// a readable one is left alone.
func TestStoreRestore(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	ctx := context.Background()
	root := rootkey.Generate()
	wrapped := root.Wrap(secret.Random(32), "m")
	if err := s.Put(ctx, "m", wrapped); err != nil {
		t.Fatal(err)
	}
	c := Commitment(wrapped)
	if err := s.Restore(ctx, "m", wrapped, c); !errors.Is(err, ErrReadable) {
		t.Fatalf("restore of a readable material: %v", err)
	}
	old, _ := s.keys[0].Get(ctx, "m")
	for i := range 2 { // lose both keys' bytes: the sealed copies no longer open
		if err := s.keys[i].Put(ctx, "m", secret.Random(32)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Get(ctx, "m"); !errors.Is(err, ErrUnreadable) {
		t.Fatalf("get: %v", err)
	}
	if err := s.Restore(ctx, "m", root.Wrap(secret.Random(32), "m"), c); !errors.Is(err, ErrNotCommitted) {
		t.Fatalf("restore of other bytes: %v", err)
	}
	if err := s.Restore(ctx, "m", wrapped, c); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetChecked(ctx, "m", c); err != nil || !bytes.Equal(got, wrapped) {
		t.Fatalf("after restore: %v", err)
	}
	if k, _ := s.keys[1].Get(ctx, "m"); k.Equal(old) {
		t.Fatal("restored under the old key")
	}
	if res, err := s.Verify(ctx, map[string][]string{"m": {c}}); err != nil || len(res.Repaired) != 0 || len(res.Unreadable) != 0 {
		t.Fatalf("both copies after restore: %+v %v", res, err)
	}
}
