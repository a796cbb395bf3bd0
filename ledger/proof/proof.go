// Package proof computes Merkle proofs over the live ledger: that an event
// is in the tree of a size (inclusion), and that a tree extends a smaller
// one (consistency), with the roots they check against. A signed
// checkpoint of that size vouches for the root; golang.org/x/mod's
// tlog.CheckRecord and tlog.CheckTree check the proofs.
//
// After removed segments the tree continues from the base's frontier:
// proofs for events from the base on; older ones are the archive's.
//
// The package reads only; its functions are safe to call concurrently.
package proof

import (
	"context"
	"encoding/json"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
)

// Inclusion proves that the event at Index is the leaf LeafHash of the
// tree of Size events, whose root is Root. Its JSON is what
// `keyledger audit prove --index` prints.
type Inclusion struct {
	Event    json.RawMessage  `json:"event"` // the event's exact stored bytes
	Index    int64            `json:"index"`
	LeafHash tlog.Hash        `json:"leafHash"`
	Proof    tlog.RecordProof `json:"proof"`
	Root     tlog.Hash        `json:"root"`
	Size     int64            `json:"size"`
}

// Consistency proves that the tree of NewSize events extends the tree of
// OldSize. Its JSON is what `keyledger audit prove --old` prints.
type Consistency struct {
	NewRoot tlog.Hash      `json:"newRoot"`
	NewSize int64          `json:"newSize"`
	OldRoot tlog.Hash      `json:"oldRoot"`
	OldSize int64          `json:"oldSize"`
	Proof   tlog.TreeProof `json:"proof"`
}

// tree folds the live ledger into a Merkle tree, keeping the stored bytes
// of the event at index (if index ≥ 0).
func tree(ctx context.Context, l *ledger.Ledger, index int64) (*merkle.MemTree, []byte, error) {
	t, err := l.MemTree()
	if err != nil {
		return nil, nil, err
	}
	var leaf []byte
	_, err = l.Replay(ctx, chain.Head{}, func(r event.Record) error {
		if int64(r.Pos) == index {
			leaf = r.Raw
		}
		return t.Append(r.Raw)
	})
	return t, leaf, err
}

// Include proves that event index is in the tree of size events (0: the
// whole ledger).
func Include(ctx context.Context, l *ledger.Ledger, index, size int64) (Inclusion, error) {
	t, leaf, err := tree(ctx, l, index)
	if err != nil {
		return Inclusion{}, err
	}
	if size == 0 {
		size = t.Size()
	}
	p, err := t.Inclusion(index, size)
	if err != nil {
		return Inclusion{}, err
	}
	root, _ := t.Root(size)
	return Inclusion{Event: leaf, Index: index, LeafHash: tlog.RecordHash(leaf), Proof: p, Root: root, Size: size}, nil
}

// Extend proves that the tree of size events (0: the whole ledger)
// extends the tree of old events.
func Extend(ctx context.Context, l *ledger.Ledger, old, size int64) (Consistency, error) {
	t, _, err := tree(ctx, l, -1)
	if err != nil {
		return Consistency{}, err
	}
	if size == 0 {
		size = t.Size()
	}
	p, err := t.Consistency(old, size)
	if err != nil {
		return Consistency{}, err
	}
	oldRoot, _ := t.Root(old)
	newRoot, _ := t.Root(size)
	return Consistency{NewRoot: newRoot, NewSize: size, OldRoot: oldRoot, OldSize: old, Proof: p}, nil
}
