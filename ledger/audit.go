package ledger

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/checkpoint"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/segment"
)

// AuditAgainst folds the live ledger as chain.Audit does, from where it
// starts (after removed segments, from their base: the fold starts with
// its chain head and writers and the Merkle root continues its frontier),
// and when cp is not nil checks that the ledger extends it (a
// *checkpoint.MismatchError otherwise). Fetch cp before calling: a
// checkpoint stored while the walk runs may cover events the walk did not
// reach. A checkpoint older than the base cannot be checked here (its
// archive's consistency proof does that) and is refused. The Merkle root
// is computed as the events stream by, in memory logarithmic in the
// ledger. watch, when not nil, sees every message before it is folded (a
// progress meter, pacing); an error it returns ends the walk.
func (l *Ledger) AuditAgainst(ctx context.Context, cp *merkle.Checkpoint, watch func(chain.Message) error) (chain.Report, error) {
	var src chain.Source = l
	if watch != nil {
		src = watched{l, watch}
	}
	return auditFrom(ctx, src, l.base, cp)
}

// watched is a ledger whose messages pass watch on their way to a fold.
type watched struct {
	l     *Ledger
	watch func(chain.Message) error
}

func (w watched) Messages(ctx context.Context, fn func(chain.Message) error) error {
	return w.l.Messages(ctx, func(m chain.Message) error {
		if err := w.watch(m); err != nil {
			return err
		}
		return fn(m)
	})
}

// auditFrom is AuditAgainst over a source whose messages continue base.
func auditFrom(ctx context.Context, src chain.Source, base segment.Base, cp *merkle.Checkpoint) (chain.Report, error) {
	acc, err := baseAccumulator(base)
	if err != nil {
		return chain.Report{}, err
	}
	if cp != nil {
		acc.want = cp.Size
		if cp.Size < int64(base.FirstIndex) {
			return chain.Report{}, fmt.Errorf("ledger: the checkpoint (size %d) is older than the live ledger's base (event %d)", cp.Size, base.FirstIndex)
		}
		if cp.Size == int64(base.FirstIndex) {
			acc.root = acc.rootNow()
		}
		// The base's writers are whom the fold trusts: a checkpoint that
		// names the ledger's writers vouches for them.
		if ws := cp.Known(); ws != nil && !base.Empty() {
			if err := checkBaseWriters(base, ws, "the signed checkpoint"); err != nil {
				return chain.Report{}, err
			}
		}
	}
	f, err := base.Folder()
	if err != nil {
		return chain.Report{}, &BaseError{Reason: err.Error()}
	}
	r, err := chain.AuditFoldFrom(ctx, src, f, acc.add)
	var ue *UnreadableError
	if errors.As(err, &ue) && ue.After == nil {
		h := r.Head
		ue.After = &h
	}
	if err != nil || cp == nil {
		return r, err
	}
	if err := checkpoint.CheckExtends(*cp, int64(r.Head.Count), acc.rootAt); err != nil {
		return r, err
	}
	// The base's writers were taken on the checkpoint's word, revoked ones
	// included (a base from before a revocation names them live): the fold
	// must have revoked exactly those the checkpoint names revoked, before
	// its size. Without a base the root covers the revocations themselves.
	if !base.Empty() {
		if err := chain.CheckNamedRevoked(cp.Revoked(), uint64(cp.Size), r.Revoked); err != nil {
			return r, &BaseError{Reason: err.Error()}
		}
	}
	return r, nil
}

// rootAccumulator computes the RFC 6962 root of the first want leaves as
// leaves stream by, keeping only the compact range (one hash per set bit
// of the leaf count).
type rootAccumulator struct {
	want  int64
	n     int64
	stack []tlog.Hash // roots of perfect subtrees, largest first
	root  tlog.Hash   // the root at want, once n reached it
}

func (a *rootAccumulator) add(r event.Record) {
	if a.n >= a.want {
		a.n++
		return
	}
	h := tlog.RecordHash(r.Raw)
	a.n++
	for m := a.n; m&1 == 0; m >>= 1 {
		h = tlog.NodeHash(a.stack[len(a.stack)-1], h)
		a.stack = a.stack[:len(a.stack)-1]
	}
	a.stack = append(a.stack, h)
	if a.n == a.want {
		a.root = a.stack[len(a.stack)-1]
		for i := len(a.stack) - 2; i >= 0; i-- {
			a.root = tlog.NodeHash(a.stack[i], a.root)
		}
	}
}

// rootNow is the root of the n leaves seen (with the stack as it is).
func (a *rootAccumulator) rootNow() tlog.Hash {
	if len(a.stack) == 0 {
		return tlog.Hash{}
	}
	root := a.stack[len(a.stack)-1]
	for i := len(a.stack) - 2; i >= 0; i-- {
		root = tlog.NodeHash(a.stack[i], root)
	}
	return root
}

func (a *rootAccumulator) rootAt(size int64) (tlog.Hash, error) {
	if size != a.want || a.n < a.want {
		return tlog.Hash{}, merkle.ErrRange
	}
	return a.root, nil
}
