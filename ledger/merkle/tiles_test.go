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

// leafSource serves leaves like the ledger does, counting the reads.
func leafSource(n int, reads *int) LeafSource {
	return func(_ context.Context, first int64, count int, fn func([]byte) error) error {
		*reads++
		for i := first; i < first+int64(count) && i < int64(n); i++ {
			if err := fn(leaf(int(i))); err != nil {
				return err
			}
		}
		return nil
	}
}

// TestRestoredTreeRepairsTilesFromLeaves: restored from its frontier over
// a store that lost or garbled tiles, a tree with a leaf source rebuilds
// each tile a proof needs, checks it against the edge and stores it again;
// a source whose leaves are not the tree's gives no proof.
func TestRestoredTreeRepairsTilesFromLeaves(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryStore()
	tree, ref := build(t, store, 70000)
	f := tree.Frontier()
	if err := mustRestore(t, f, store).CheckStored(ctx); err != nil {
		t.Fatalf("intact store: %v", err)
	}
	store.Delete(0, 0)
	good, _ := store.ReadTile(ctx, 0, 7)
	bad := append([]byte(nil), good...)
	bad[40] ^= 1
	store.WriteTile(ctx, 0, 7, bad)

	restored := mustRestore(t, f, store)
	if err := restored.CheckStored(ctx); !errors.Is(err, ErrTileCorrupt) {
		t.Fatalf("CheckStored over a lost tile: %v", err)
	}
	reads := 0
	restored.RepairFrom(leafSource(70000, &reads))
	checkProofs(t, restored, ref)
	if _, err := restored.Inclusion(7*256+1, 70000); err != nil {
		t.Fatal(err)
	}
	if restored.Rebuilt() != 2 || reads != 2 {
		t.Fatalf("rebuilt %d tiles from %d leaf reads, want 2 from 2", restored.Rebuilt(), reads)
	}
	for _, id := range []tileID{{0, 0}, {0, 7}} {
		if _, err := store.ReadTile(ctx, id.L, id.N); err != nil {
			t.Fatalf("tile %v not stored again: %v", id, err)
		}
	}
	if err := mustRestore(t, f, store).CheckStored(ctx); err != nil {
		t.Fatalf("repaired store: %v", err)
	}

	// A lost level-1 tile is rebuilt from the tiles under it, and from the
	// leaves where those are lost too.
	store.Delete(1, 0)
	store.Delete(0, 9)
	reads = 0
	restored = mustRestore(t, f, store)
	restored.RepairFrom(leafSource(70000, &reads))
	checkProofs(t, restored, ref)
	if restored.Rebuilt() != 1 || reads != 1 {
		t.Fatalf("rebuilt %d tiles from %d leaf reads, want 1 from 1", restored.Rebuilt(), reads)
	}
	// Under a lost tile, a garbled one cannot be told apart from the
	// others: the lost one is rebuilt from the leaves alone, and the proof
	// is the tree's.
	store.Delete(1, 0)
	store.WriteTile(ctx, 0, 7, bad)
	restored = mustRestore(t, f, store)
	restored.RepairFrom(leafSource(70000, &reads))
	want, _ := tlog.TreeHash(70000, ref)
	if p, err := restored.Inclusion(300, 70000); err != nil || tlog.CheckRecord(p, 70000, want, 300, tlog.RecordHash(leaf(300))) != nil {
		t.Fatalf("a garbled tile under a lost one: %v", err)
	}
	store.WriteTile(ctx, 0, 7, good)

	// Leaves that are not the tree's: refused, never a proof.
	store.Delete(0, 3)
	liar := mustRestore(t, f, store)
	liar.RepairFrom(func(_ context.Context, first int64, n int, fn func([]byte) error) error {
		for i := first; i < first+int64(n); i++ {
			if err := fn(leaf(int(i) + 1)); err != nil {
				return err
			}
		}
		return nil
	})
	if p, err := liar.Inclusion(3*256+1, 70000); !errors.Is(err, ErrTileCorrupt) {
		t.Fatalf("a tile rebuilt from foreign leaves served a proof (%d hashes), err %v", len(p), err)
	}
	if _, err := store.ReadTile(ctx, 0, 3); !errors.Is(err, ErrTileNotFound) {
		t.Fatalf("a wrong rebuilt tile was stored: %v", err)
	}
}

func mustRestore(t *testing.T, f Frontier, store TileStore) *Tree {
	t.Helper()
	tree, err := Restore(f, store, 2)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// TestGarbledTileUnderGarbledParentIsRepaired: someone with write access to
// the tile bucket garbles a level-0 tile and the level-1 tile above it (same
// lengths, wrong hashes) in the middle of the tree, where CheckStored (first
// and last tile of each level) does not look, so a restart restores from the
// frontier and never rewrites them. Proofs under them must come back from
// the ledger's leaves, not fail for ever.
func TestGarbledTileUnderGarbledParentIsRepaired(t *testing.T) {
	ctx := context.Background()
	store := NewMemoryStore()
	const n = 3*65536 + 10 // level-1 tiles 0, 1 and 2 are full
	tree, ref := build(t, store, n)
	f := tree.Frontier()
	for _, id := range []tileID{{1, 1}, {0, 256 + 7}} {
		data, _ := store.ReadTile(ctx, id.L, id.N)
		bad := append([]byte(nil), data...)
		bad[40] ^= 1
		store.WriteTile(ctx, id.L, id.N, bad)
	}
	restored := mustRestore(t, f, store)
	if err := restored.CheckStored(ctx); err != nil {
		t.Fatalf("CheckStored: %v (the garbled tiles are in the middle; it is not expected to see them)", err)
	}
	reads := 0
	restored.RepairFrom(leafSource(n, &reads))
	idx := int64((256+7)*256 + 1)
	root, _ := tlog.TreeHash(n, ref)
	p, err := restored.Inclusion(idx, n)
	if err != nil {
		t.Fatalf("inclusion under a garbled tile and its garbled parent: %v", err)
	}
	if err := tlog.CheckRecord(p, n, root, idx, tlog.RecordHash(leaf(int(idx)))); err != nil {
		t.Fatal(err)
	}
	checkProofs(t, restored, ref)
	// Stored again: a restart (no leaf source) proves from the store alone.
	again := mustRestore(t, f, store)
	if _, err := again.Inclusion(idx, n); err != nil {
		t.Fatalf("repaired tiles not stored again: %v", err)
	}
}

// TestAppendHashesEverySize: Append takes a level's left sibling from the
// newest hash it stored there (Tree.newest) rather than from the edge's
// tiles; every root it leads to, at every size, equals the reference's,
// and so does a tree restored at an odd size (nothing remembered yet) that
// goes on appending.
func TestAppendHashesEverySize(t *testing.T) {
	const n, cut = 3000, 1337
	tree, ref := New(NewMemoryStore(), 4), &refTree{}
	var restored *Tree
	for i := 0; i < n; i++ {
		hs, err := tlog.StoredHashes(int64(i), leaf(i), ref)
		if err != nil {
			t.Fatal(err)
		}
		ref.hashes = append(ref.hashes, hs...)
		trees := []*Tree{tree}
		if restored != nil {
			trees = append(trees, restored)
		}
		for _, tr := range trees {
			if err := tr.Append(leaf(i)); err != nil {
				t.Fatal(err)
			}
			want, _ := tlog.TreeHash(int64(i+1), ref)
			if got, err := tr.Root(int64(i + 1)); err != nil || got != want {
				t.Fatalf("root at size %d (restored: %v): %v", i+1, tr == restored, err)
			}
		}
		if i+1 == cut {
			if _, err := tree.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			var err error
			if restored, err = Restore(tree.Frontier(), tree.store, 4); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// BenchmarkAppend is Append alone, at a size past the first tile level.
func BenchmarkAppend(b *testing.B) {
	tree := New(NewMemoryStore(), 4)
	ev := make([]byte, 400)
	for i := 0; i < 70000; i++ {
		if err := tree.Append(ev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := tree.Append(ev); err != nil {
			b.Fatal(err)
		}
		if tree.Pending() > 64 {
			b.StopTimer()
			if _, err := tree.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
}
