package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/segment"
)

// A ledger must extend the newest signed checkpoint stored beside it: hold
// at least as many events, and its first Size events must rebuild the
// signed root. A hash chain alone cannot see a tail cut off cleanly (delete
// the last blocks and the index, and what remains still links); a checkpoint
// can. Start-up and audit verify check it. What a checkpoint does not cover
// yet (the events of the last checkpoint interval) only a witness outside
// the box can vouch for.

// CheckpointMismatchError means the ledger does not extend its newest
// signed checkpoint: it was truncated (fewer events than the checkpoint
// covers) or rewritten (the same size, another root).
type CheckpointMismatchError struct {
	Checkpoint merkle.Checkpoint
	Events     int64     // valid events in the ledger
	Root       tlog.Hash // the ledger's root at the checkpoint's size, if it has that many
}

// Truncated reports whether the ledger is shorter than the checkpoint.
func (e *CheckpointMismatchError) Truncated() bool { return e.Events < e.Checkpoint.Size }

func (e *CheckpointMismatchError) Error() string {
	cp := e.Checkpoint
	if e.Truncated() {
		return fmt.Sprintf("ledger truncated: the newest signed checkpoint (%s) covers %d events but the ledger holds %d: "+
			"events from index %d to %d are gone", cp.Origin, cp.Size, e.Events, e.Events, cp.Size-1)
	}
	return fmt.Sprintf("ledger rewritten: its first %d events do not rebuild the root of the newest signed checkpoint (%s): "+
		"signed %s, ledger %s", cp.Size, cp.Origin, cp.Root, e.Root)
}

// CheckExtends returns a *CheckpointMismatchError unless a ledger of events
// valid events, whose Merkle root at a size is rootAt(size), extends cp.
func CheckExtends(cp merkle.Checkpoint, events int64, rootAt func(size int64) (tlog.Hash, error)) error {
	if events < cp.Size {
		return &CheckpointMismatchError{Checkpoint: cp, Events: events}
	}
	root, err := rootAt(cp.Size)
	if err != nil {
		return fmt.Errorf("ledger: Merkle root at the checkpoint's size %d: %w", cp.Size, err)
	}
	if root != cp.Root {
		return &CheckpointMismatchError{Checkpoint: cp, Events: events, Root: root}
	}
	return nil
}

// newestSearch bounds how far back Newest looks for a checkpoint its key
// verifies (instances sharing a ledger may each sign with their own key).
const newestSearch = 64

// Newest returns the newest stored checkpoint that verifies with vkey (a
// note verifier key), and how many newer ones did not verify (another
// instance's key, or forged). With vkey "" the newest is taken unverified,
// which can only cause a false alarm, never hide a truncation.
// ErrNoCheckpoint means none is stored, or none of the newest few
// verifies.
func (c *Checkpoints) Newest(ctx context.Context, vkey string) (cp merkle.Checkpoint, skipped int, err error) {
	info, err := c.stream.Info(ctx)
	if err != nil {
		return cp, 0, err
	}
	if info.State.Msgs == 0 {
		return cp, 0, ErrNoCheckpoint
	}
	for seq := info.State.LastSeq; seq >= info.State.FirstSeq && seq > 0 && skipped < newestSearch; seq-- {
		m, err := c.stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return cp, skipped, err
		}
		if vkey == "" {
			cp, err = unverified(m.Data)
		} else {
			cp, err = merkle.Open(m.Data, vkey)
		}
		if err == nil {
			return cp, skipped, nil
		}
		skipped++
	}
	return cp, skipped, ErrNoCheckpoint
}

// unverified reads a signed note's checkpoint without checking the
// signature.
func unverified(signed []byte) (merkle.Checkpoint, error) {
	text, _, ok := bytes.Cut(signed, []byte("\n\n"))
	if !ok {
		return merkle.Checkpoint{}, errors.New("ledger: malformed signed checkpoint")
	}
	return merkle.ParseBody(string(text) + "\n")
}

// ReadCheckpoints opens the checkpoint stream of a ledger stream without
// creating or changing it (what a subscribe-only audit identity may do).
// ErrNoCheckpoint means there is no such stream.
func ReadCheckpoints(ctx context.Context, nc *nats.Conn, ledgerStream string) (*Checkpoints, error) {
	if ledgerStream == "" {
		ledgerStream = "KEYLEDGER"
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	stream, err := js.Stream(ctx, ledgerStream+"_CHECKPOINTS")
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, ErrNoCheckpoint
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: checkpoint stream: %w", err)
	}
	return &Checkpoints{js: js, stream: stream, subject: "keyledger.checkpoints." + ledgerStream}, nil
}

// AuditAgainst folds the whole ledger as chain.Audit does and, when cp is
// not nil, checks that the ledger extends it (a *CheckpointMismatchError
// otherwise). Fetch cp before calling: a checkpoint stored while the walk
// runs may cover events the walk did not reach. The Merkle root is
// computed as the events stream by, in memory logarithmic in the ledger.
func (l *Ledger) AuditAgainst(ctx context.Context, cp *merkle.Checkpoint) (chain.Report, error) {
	return AuditAgainstFrom(ctx, l, l.base, cp)
}

// AuditAgainst is Ledger.AuditAgainst over any source of the ledger's
// messages (e.g. one that reports progress as it reads) from the first.
func AuditAgainst(ctx context.Context, src chain.Source, cp *merkle.Checkpoint) (chain.Report, error) {
	return AuditAgainstFrom(ctx, src, segment.Base{}, cp)
}

// AuditAgainstFrom is AuditAgainst over a source whose messages continue
// base (a live ledger after a removed segment): the fold starts with the
// base's chain head and writers and the Merkle root continues its
// frontier. A checkpoint older than the base cannot be checked here (its
// archive's consistency proof does that) and is refused.
func AuditAgainstFrom(ctx context.Context, src chain.Source, base segment.Base, cp *merkle.Checkpoint) (chain.Report, error) {
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
		if ws := cp.Writers(); ws != nil && !base.Empty() {
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
	return r, CheckExtends(*cp, int64(r.Head.Count), acc.rootAt)
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
