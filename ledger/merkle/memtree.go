package merkle

import (
	"errors"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// MemTree is a Merkle tree held whole in memory (64 B per leaf) that can
// also continue from a frontier: the tree of a ledger whose first events
// were archived and removed. Archives and their verification use it; the
// serving ledger's tree is MemTree, kept in tiles.
type MemTree struct {
	mu     sync.RWMutex
	hashes []tlog.Hash // tlog's stored hashes, by stored-hash index - off
	size   int64       // number of leaves
	// A tree continued from a frontier (NewMemTreeFrom) holds, below off,
	// only the frontier's subtree hashes: leaves before its base were
	// archived and removed.
	off      int64
	frontier map[int64]tlog.Hash
}

// NewMemTreeFrom continues the tree of the first size leaves from its
// frontier: the hashes of the maximal complete subtrees of those leaves,
// left to right (Frontier). Roots, inclusion proofs and consistency proofs
// that need no hash inside the removed leaves keep working; others return
// ErrRange.
func NewMemTreeFrom(size int64, frontier []tlog.Hash) (*MemTree, error) {
	nodes := FrontierNodes(size)
	if len(nodes) != len(frontier) {
		return nil, errors.New("merkle: frontier does not match the tree size")
	}
	t := &MemTree{size: size, off: tlog.StoredHashCount(size), frontier: map[int64]tlog.Hash{}}
	for i, n := range nodes {
		t.frontier[tlog.StoredHashIndex(n.Level, n.Index)] = frontier[i]
	}
	return t, nil
}

// Node names a complete subtree: 2^Level leaves from Index<<Level.
type Node struct {
	Level int
	Index int64
}

// FrontierNodes are the maximal complete subtrees of the first size
// leaves, left to right.
func FrontierNodes(size int64) []Node {
	var out []Node
	start := int64(0)
	for level := 62; level >= 0; level-- {
		if size&(1<<level) != 0 {
			out = append(out, Node{Level: level, Index: start >> level})
			start += 1 << level
		}
	}
	return out
}

// Frontier returns the hashes of FrontierNodes(size) (size ≤ Size).
func (t *MemTree) Frontier(size int64) ([]tlog.Hash, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if size < 0 || size > t.size {
		return nil, ErrRange
	}
	// tlog stores the hash of every complete subtree.
	var xs []int64
	for _, n := range FrontierNodes(size) {
		xs = append(xs, tlog.StoredHashIndex(n.Level, n.Index))
	}
	return t.readHashes(xs)
}

// ReadHashes implements tlog.HashReader; the caller holds mu.
func (t *MemTree) readHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < t.off {
			h, ok := t.frontier[x]
			if !ok {
				return nil, ErrRange
			}
			out[i] = h
			continue
		}
		if x-t.off >= int64(len(t.hashes)) {
			return nil, ErrRange
		}
		out[i] = t.hashes[x-t.off]
	}
	return out, nil
}

// Append adds the next event (its exact stored bytes) as a leaf.
func (t *MemTree) Append(event []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	hs, err := tlog.StoredHashes(t.size, event, tlog.HashReaderFunc(t.readHashes))
	if err != nil {
		return err
	}
	t.hashes = append(t.hashes, hs...)
	t.size++
	return nil
}

// Size is the number of leaves.
func (t *MemTree) Size() int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.size
}

// Root is the tree hash of the first size leaves.
func (t *MemTree) Root(size int64) (tlog.Hash, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if size < 0 || size > t.size {
		return tlog.Hash{}, ErrRange
	}
	return tlog.TreeHash(size, tlog.HashReaderFunc(t.readHashes))
}

// Inclusion proves that leaf index is in the tree of the first size leaves.
func (t *MemTree) Inclusion(index, size int64) (tlog.RecordProof, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if index < 0 || index >= size || size > t.size {
		return nil, ErrRange
	}
	return tlog.ProveRecord(size, index, tlog.HashReaderFunc(t.readHashes))
}

// Consistency proves that the tree of size newSize extends that of oldSize.
func (t *MemTree) Consistency(oldSize, newSize int64) (tlog.TreeProof, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if oldSize < 1 || oldSize > newSize || newSize > t.size {
		return nil, ErrRange
	}
	return tlog.ProveTree(newSize, oldSize, tlog.HashReaderFunc(t.readHashes))
}
