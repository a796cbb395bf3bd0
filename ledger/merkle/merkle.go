// Package merkle keeps the RFC 6962 Merkle tree over the ledger's events
// (leaf i is event i's exact stored bytes, so the tree's indexes are the
// ledger's dense event indexes) and produces signed checkpoints in the C2SP
// tlog-checkpoint / signed-note format, inclusion proofs and consistency
// proofs. Hashing and proofs are golang.org/x/mod/sumdb/tlog's, notes are
// golang.org/x/mod/sumdb/note's.
//
// The tree is derived state: rebuilt from the ledger at start, it holds
// about two 32-byte hashes per event in memory. A Tree is safe for
// concurrent use; Append must be called in event order.
package merkle

import (
	"errors"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// ErrRange means a proof was asked for sizes or indexes the tree does not have.
var ErrRange = errors.New("merkle: index or size out of range")

// Tree is the Merkle tree of the ledger so far.
type Tree struct {
	mu     sync.RWMutex
	hashes []tlog.Hash // tlog's stored hashes, by stored-hash index
	size   int64       // number of leaves
}

// ReadHashes implements tlog.HashReader; the caller holds mu.
func (t *Tree) readHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(t.hashes)) {
			return nil, ErrRange
		}
		out[i] = t.hashes[x]
	}
	return out, nil
}

// Append adds the next event (its exact stored bytes) as a leaf.
func (t *Tree) Append(event []byte) error {
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
func (t *Tree) Size() int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.size
}

// Root is the tree hash of the first size leaves.
func (t *Tree) Root(size int64) (tlog.Hash, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if size < 0 || size > t.size {
		return tlog.Hash{}, ErrRange
	}
	return tlog.TreeHash(size, tlog.HashReaderFunc(t.readHashes))
}

// Inclusion proves that leaf index is in the tree of the first size leaves.
func (t *Tree) Inclusion(index, size int64) (tlog.RecordProof, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if index < 0 || index >= size || size > t.size {
		return nil, ErrRange
	}
	return tlog.ProveRecord(size, index, tlog.HashReaderFunc(t.readHashes))
}

// Consistency proves that the tree of size newSize extends that of oldSize.
func (t *Tree) Consistency(oldSize, newSize int64) (tlog.TreeProof, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if oldSize < 1 || oldSize > newSize || newSize > t.size {
		return nil, ErrRange
	}
	return tlog.ProveTree(newSize, oldSize, tlog.HashReaderFunc(t.readHashes))
}
