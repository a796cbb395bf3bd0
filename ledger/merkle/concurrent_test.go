package merkle

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// TestReadersWhileAppending: Append reads the edge in place; readers
// proving sizes the tree has reached meanwhile (their own views, copies
// of the edge) get the reference's roots and valid proofs while tiles
// fill, complete and are flushed under them.
func TestReadersWhileAppending(t *testing.T) {
	const n = 3000
	ref := &refTree{}
	for i := range n {
		hs, err := tlog.StoredHashes(int64(i), leaf(i), ref)
		if err != nil {
			t.Fatal(err)
		}
		ref.hashes = append(ref.hashes, hs...)
	}
	roots := make([]tlog.Hash, n+1)
	for size := int64(1); size <= n; size++ {
		roots[size], _ = tlog.TreeHash(size, ref)
	}
	tree := New(NewMemoryStore(), 2)
	var done atomic.Bool
	var wg sync.WaitGroup
	for r := range 3 {
		wg.Go(func() {
			for i := r; !done.Load(); i++ {
				size := tree.Size()
				if size == 0 {
					continue
				}
				root, err := tree.Root(size)
				if err != nil || root != roots[size] {
					t.Errorf("root(%d) = %x, %v", size, root, err)
					return
				}
				idx := int64(i*7919) % size
				p, err := tree.Inclusion(idx, size)
				if err == nil {
					err = tlog.CheckRecord(p, size, root, idx, tlog.RecordHash(leaf(int(idx))))
				}
				if err != nil {
					t.Errorf("inclusion %d in %d: %v", idx, size, err)
					return
				}
			}
		})
	}
	for i := range n {
		if err := tree.Append(leaf(i)); err != nil {
			t.Fatal(err)
		}
		if i%300 == 0 {
			if _, err := tree.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	done.Store(true)
	wg.Wait()
	if root, err := tree.Root(n); err != nil || root != roots[n] {
		t.Fatalf("root(%d) = %x, %v", n, root, err)
	}
}
