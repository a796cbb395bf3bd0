package merkle

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// refTree keeps every stored hash in memory: the reference the tiled tree
// must agree with.
type refTree struct{ hashes []tlog.Hash }

func (r *refTree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = r.hashes[x]
	}
	return out, nil
}

func leaf(i int) []byte { return []byte(fmt.Sprintf(`{"index":%d}`, i)) }

// build appends n leaves to a tree over store, flushing as a server does,
// and to a reference.
func build(t *testing.T, store TileStore, n int) (*Tree, *refTree) {
	t.Helper()
	tree, ref := New(store, 4), &refTree{}
	for i := 0; i < n; i++ {
		hs, err := tlog.StoredHashes(int64(i), leaf(i), ref)
		if err != nil {
			t.Fatal(err)
		}
		ref.hashes = append(ref.hashes, hs...)
		if err := tree.Append(leaf(i)); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 0 {
			if _, err := tree.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := tree.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return tree, ref
}

// checkProofs verifies inclusion and consistency proofs from tree for old
// and recent indexes against the reference's roots.
func checkProofs(t *testing.T, tree *Tree, ref *refTree) {
	t.Helper()
	n := tree.Size()
	for _, size := range []int64{1, 255, 256, 257, 65535, 65536, 65537, n} {
		if size > n {
			continue
		}
		want, _ := tlog.TreeHash(size, ref)
		root, err := tree.Root(size)
		if err != nil || root != want {
			t.Fatalf("root(%d): %v", size, err)
		}
		for _, idx := range []int64{0, 3, size / 2, size - 1} {
			if idx >= size {
				continue
			}
			p, err := tree.Inclusion(idx, size)
			if err != nil {
				t.Fatalf("inclusion %d in %d: %v", idx, size, err)
			}
			if err := tlog.CheckRecord(p, size, root, idx, tlog.RecordHash(leaf(int(idx)))); err != nil {
				t.Fatalf("inclusion %d in %d: %v", idx, size, err)
			}
		}
		cur, _ := tlog.TreeHash(n, ref)
		p, err := tree.Consistency(size, n)
		if err != nil || tlog.CheckTree(p, n, cur, size, want) != nil {
			t.Fatalf("consistency %d..%d: %v", size, n, err)
		}
	}
}

// TestTiledTreeMatchesReference covers three tile levels (more than 65,536
// leaves) with a cache of four tiles, so proofs read tiles from the store.
func TestTiledTreeMatchesReference(t *testing.T) {
	store := NewMemoryStore()
	tree, ref := build(t, store, 70000)
	if tree.Pending() != 0 {
		t.Fatalf("%d tiles still pending after Flush", tree.Pending())
	}
	if _, err := store.ReadTile(context.Background(), 1, 0); err != nil {
		t.Fatalf("the level-1 tile was not stored: %v", err)
	}
	checkProofs(t, tree, ref)
	// In memory: the right edge only (at most one partial tile a level).
	f := tree.Frontier()
	if len(f.Edge) != 3 || len(f.Edge[0]) >= tileBytes {
		t.Fatalf("edge of %d levels", len(f.Edge))
	}
}

// TestProofsAfterRestart: a new process over the same tiles, rebuilt by
// replaying the leaves or restored from a frontier, proves old indexes
// from stored tiles.
func TestProofsAfterRestart(t *testing.T) {
	store := NewMemoryStore()
	first, ref := build(t, store, 3000)
	replayed, _ := build(t, store, 3000)
	checkProofs(t, replayed, ref)
	restored, err := Restore(first.Frontier(), store, 2)
	if err != nil {
		t.Fatal(err)
	}
	checkProofs(t, restored, ref)
	if err := restored.Append(leaf(3000)); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(Frontier{Size: 3000}, store, 2); err == nil {
		t.Fatal("a frontier without its edge was accepted")
	}
}

// TestMissingTileIsRebuiltByReplay: a crash while writing a tile leaves it
// missing or truncated; proofs that need it fail (never a wrong proof),
// and replaying the ledger (the next start) writes it again.
func TestMissingTileIsRebuiltByReplay(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryStore()
	_, ref := build(t, store, 3000)
	store.Delete(0, 2)
	good, _ := store.ReadTile(ctx, 0, 5)
	store.WriteTile(ctx, 0, 5, good[:len(good)-100]) // a torn write

	broken := New(store, 2)
	for i := 0; i < 3000; i++ {
		broken.Append(leaf(i))
	}
	// Before its pending tiles are flushed they answer from memory: drop
	// them by restoring from the frontier instead, as a snapshot start would.
	restored, _ := Restore(broken.Frontier(), store, 2)
	if _, err := restored.Inclusion(2*256+1, 3000); !errors.Is(err, ErrTileCorrupt) {
		t.Fatalf("proof over a missing tile: %v", err)
	}
	if _, err := restored.Inclusion(5*256+1, 3000); !errors.Is(err, ErrTileCorrupt) {
		t.Fatalf("proof over a truncated tile: %v", err)
	}
	repaired, err := broken.Flush(ctx)
	if err != nil || repaired != 1 { // the truncated one; the missing one is simply written
		t.Fatalf("flush: repaired %d, %v", repaired, err)
	}
	checkProofs(t, restored, ref)
}

// TestTamperedTileIsNotServed: a tile changed in the store fails its check
// against the tree; no proof is made from it.
func TestTamperedTileIsNotServed(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryStore()
	tree, ref := build(t, store, 70000)
	for _, id := range []tileID{{0, 7}, {1, 0}} {
		data, _ := store.ReadTile(ctx, id.L, id.N)
		bad := append([]byte(nil), data...)
		bad[40] ^= 1
		store.WriteTile(ctx, id.L, id.N, bad)
		fresh, _ := Restore(tree.Frontier(), store, 2)
		idx := int64(7*256 + 1)
		if id.L == 1 {
			idx = 300 // under tile 1/0's second hash
		}
		if p, err := fresh.Inclusion(idx, 70000); !errors.Is(err, ErrTileCorrupt) {
			t.Fatalf("tampered tile %v served a proof (%d hashes), err %v", id, len(p), err)
		}
		if _, err := fresh.Root(300); id.L == 1 && !errors.Is(err, ErrTileCorrupt) {
			t.Fatalf("root over a tampered tile: %v", err)
		}
		store.WriteTile(ctx, id.L, id.N, data)
	}
	checkProofs(t, tree, ref)
}
