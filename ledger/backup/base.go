package backup

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/segment"
	"github.com/keyledger/keyledger/ledger/snapshot"
	"github.com/keyledger/keyledger/ledger/writer"
)

// A ledger whose oldest segments were archived and removed (`audit
// prune`) starts at a base (segment.Base): the index, hash and Merkle
// frontier after the removed events, and the writers registered by then.
// Its key state lives in those removed events, so the deployment starts
// from a signed snapshot of its projections at or after the base. A backup
// of it holds the live ledger from the base, and beside it:
//
//	base.json   the base and the tiled tree's frontier at it
//	snapshot    the newest stored snapshot at or before the cut that is at
//	            or after the base, as stored (header, signature, body)
//
// What vouches for them: the base's frontier and the events after it must
// rebuild the signed checkpoint's root, and its first event must link to
// the base's hash, so the base is the ledger's; its writers must be ones
// the checkpoint names; a SegmentRemoved event among the events must name
// it (as the deployment's base bucket requires); the snapshot must be
// signed by one of those writers and cover an event the backup holds (or
// the base's last), hash for hash. The state at the cut is the snapshot's,
// with the events after it folded in. The archives are not needed: they
// hold only history.
//
// A restore reproduces the base (ledger.ImportAfterBase): the events land
// at stream sequences after the base's, the base is stored again, and the
// snapshot is stored again for the restored stream (its head's stream
// sequence restated, signed with the deployment's writer key), so the
// restored deployment starts from it as the original did.

// The files of a backup after removed segments.
const (
	BaseFile     = "base.json"
	SnapshotFile = "snapshot"
)

// baseRecord is BaseFile.
type baseRecord struct {
	Base segment.Base    `json:"base"`
	Tree merkle.Frontier `json:"tree"` // the tiled tree's frontier at the base
}

// SnapshotReader reads a deployment's stored snapshots (snapshot.Store).
type SnapshotReader interface {
	List(ctx context.Context) ([]snapshot.Info, error)
	Raw(ctx context.Context, name string) ([]byte, error)
}

// rootsFrom is a compact range continued from a base's frontier.
func rootsFrom(b segment.Base, sizes ...int64) (*roots, error) {
	r := newRoots(sizes...)
	r.n = int64(b.FirstIndex)
	for _, s := range b.Frontier {
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(raw) != tlog.HashSize {
			return nil, errors.New("malformed base: frontier")
		}
		var h tlog.Hash
		copy(h[:], raw)
		r.stack = append(r.stack, h)
	}
	if len(r.stack) != len(merkle.FrontierNodes(r.n)) {
		return nil, errors.New("malformed base: its frontier does not fit its size")
	}
	if r.want[r.n] && r.n > 0 {
		r.at[r.n] = r.root()
	}
	return r, nil
}

// rootsAt starts compact ranges where a ledger with base b starts.
func rootsAt(b segment.Base) func(sizes ...int64) (*roots, error) {
	return func(sizes ...int64) (*roots, error) {
		if b.Empty() {
			return newRoots(sizes...), nil
		}
		return rootsFrom(b, sizes...)
	}
}

// checkBaseTree refuses a tiled-tree frontier that is not at the base or
// whose root is not the base's.
func checkBaseTree(rec baseRecord) error {
	if rec.Tree.Size != int64(rec.Base.FirstIndex) {
		return fmt.Errorf("its tree frontier is at %d, not at the base (%d)", rec.Tree.Size, rec.Base.FirstIndex)
	}
	acc, err := rootsFrom(rec.Base)
	if err != nil {
		return err
	}
	t, err := merkle.Restore(rec.Tree, merkle.NewMemoryStore(), 1)
	if err != nil {
		return fmt.Errorf("its tree frontier: %v", err)
	}
	got, err := t.Root(rec.Tree.Size)
	if err != nil || got != acc.root() {
		return errors.New("its tree frontier does not have the base's root")
	}
	return nil
}

// trustedWriters are the writers a snapshot after removed segments may be
// signed by: those the signed checkpoint names (every writer registered
// when it was signed).
func trustedWriters(named map[string]string) func(id string) ed25519.PublicKey {
	return func(id string) ed25519.PublicKey {
		pub, ok := named[id]
		if !ok {
			return nil
		}
		k, err := writer.ParsePublic(pub)
		if err != nil || writer.ID(k) != id {
			return nil
		}
		return k
	}
}

// checkBaseWriters refuses a base naming a writer the checkpoint does
// not name with the same key.
func checkBaseWriters(b segment.Base, named map[string]string) error {
	for id, pub := range b.Writers {
		if named[id] != pub {
			return fmt.Errorf("it names writer %s, which the signed checkpoint does not", id)
		}
	}
	return nil
}

// namesBase reports whether ev is a SegmentRemoved event naming b.
func namesBase(ev *event.Event, b segment.Base) bool {
	sr, ok := ev.Body.(*event.SegmentRemoved)
	return ok && sr.NextIndex == b.FirstIndex && sr.LastHash == b.Prev && sr.Through == b.Seq
}

// pickSnapshot returns the newest stored snapshot covering an event from
// the base's last to the one before limit, verified with trusted.
func pickSnapshot(ctx context.Context, snaps SnapshotReader, stream string, b segment.Base, limit int64,
	trusted func(string) ed25519.PublicKey) ([]byte, snapshot.Header, []byte, error) {
	if snaps == nil {
		return nil, snapshot.Header{}, nil, errors.New("no snapshot store to read")
	}
	list, err := snaps.List(ctx)
	if err != nil {
		return nil, snapshot.Header{}, nil, err
	}
	var why error
	for _, info := range list {
		if info.Pos+1 < b.FirstIndex || int64(info.Pos) >= limit {
			continue
		}
		raw, err := snaps.Raw(ctx, info.Name)
		if err != nil {
			why = err
			continue
		}
		h, body, err := snapshot.Check(raw, stream, trusted)
		if err != nil {
			why = err
			continue
		}
		return raw, h, body, nil
	}
	if why == nil {
		why = errors.New("none is stored there")
	}
	return nil, snapshot.Header{}, nil, fmt.Errorf("no snapshot at or after the base (event %d) and before the cut verifies: %v", b.FirstIndex, why)
}

func marshalBase(rec baseRecord) []byte {
	b, _ := json.MarshalIndent(rec, "", "  ")
	return append(b, '\n')
}
