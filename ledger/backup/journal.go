package backup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/offline"
	"github.com/keyledger/keyledger/ledger/segment"
	"golang.org/x/mod/sumdb/tlog"
)

// The deletion journal is the ledger of a deployment that survived the
// disaster, as an offline export (`keyledger audit export --out DIR`, or a
// newer backup's ledger/ directory): its events, the writer signature of
// every message they came from, and its signed checkpoint. It is input
// from outside the ledger being restored, and the one input that changes
// what is restored, so it is checked as any export is (DESIGN rule 14):
//
//   - its checkpoint must verify with the escrowed verifier key;
//   - every event must be in a message a registered writer signed, and
//     link (chain.Folder, the rule of every reader);
//   - every event must be covered by that checkpoint: the first Size
//     events rebuild its root, and there are no events after them (what no
//     checkpoint covers, anyone who can write the file can add);
//   - it holds at least Size events (a tail cut off is refused);
//   - its first events are the backup's (the same root at the cut);
//   - every writer the checkpoint names is registered in it.
//
// A journal that was cut short together with its checkpoint (an older,
// genuine export) verifies: what it covers is printed (JournalInfo) so the
// operator sees how new it is, and a witness state (Freshness) refuses one
// older than what the witness saw.

// JournalInfo describes a verified deletion journal.
type JournalInfo struct {
	Events     int64             // events in it
	Checkpoint merkle.Checkpoint // its signed checkpoint, covering all of them
	Last       EventInfo         // its last event
	// After is how many of its events follow the backup's cut; Deletions of
	// them are recorded again on the restored ledger, the rest (Skipped,
	// by operation) are not: restoring is a rollback of those.
	After     int64
	Deletions int
	Skipped   map[string]int

	atWitness   tlog.Hash // its root at the witness's size, if it covers it
	atWitnessOK bool
}

// OpCounts lists operations with their counts, most frequent first.
func OpCounts(m map[string]int) string {
	ops := slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		if m[a] != m[b] {
			return m[b] - m[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, 0, len(ops))
	for _, op := range ops {
		parts = append(parts, fmt.Sprintf("%s %d", op, m[op]))
	}
	return strings.Join(parts, ", ")
}

// EventInfo names one event: its index, hash and time.
type EventInfo struct {
	Index uint64
	Hash  event.Hash
	Time  time.Time
}

func eventInfo(r event.Record) EventInfo {
	return EventInfo{Index: r.Pos, Hash: r.Hash, Time: r.Event.Time}
}

// ErrJournalNotExport means the deletion journal given is not an export
// directory (a bare events file carries neither writer signatures nor a
// checkpoint, so nothing in it can be trusted).
var ErrJournalNotExport = errors.New("the deletion journal must be an export directory (" + offline.EventsFile + ", " +
	offline.SignaturesFile + " and " + offline.CheckpointFile + ", from `keyledger audit export --out DIR`), not a bare events file")

// applyJournal verifies the journal directory dir against the backup and
// collects the deletions it records after the cut.
func (b *Backup) applyJournal(dir string) error {
	refuseJ := func(format string, args ...any) error {
		return refuse("deletion journal %s: %s", dir, fmt.Sprintf(format, args...))
	}
	if st, err := os.Stat(dir); err != nil {
		return refuseJ("%v", err)
	} else if !st.IsDir() {
		return refuseJ("%v", ErrJournalNotExport)
	}
	// An export of a ledger after removed segments starts at its base
	// (segment.BaseFile): its events are checked from there, which needs
	// the base at or before the backup's cut.
	var base segment.Base
	if raw, err := os.ReadFile(filepath.Join(dir, segment.BaseFile)); err == nil {
		if err := json.Unmarshal(raw, &base); err != nil {
			return refuseJ("%s: malformed", segment.BaseFile)
		}
		if int64(base.FirstIndex) > b.Checkpoint.Size {
			return refuseJ("it starts at event %d, after the backup's cut (%d): events removed since the backup are not in it", base.FirstIndex, b.Checkpoint.Size)
		}
	}
	signed, err := os.ReadFile(filepath.Join(dir, offline.CheckpointFile))
	if err != nil {
		return refuseJ("no signed checkpoint: %v", err)
	}
	jcp, err := merkle.Open(signed, b.verifier)
	if err != nil {
		return refuseJ("its checkpoint is not signed by the verifier key: %v", err)
	}
	events, err := openLines(filepath.Join(dir, offline.EventsFile))
	if err != nil {
		return refuseJ("%v", err)
	}
	defer events.close()
	sigs, err := openLines(filepath.Join(dir, offline.SignaturesFile))
	if err != nil {
		return refuseJ("no writer signatures: %v", err)
	}
	defer sigs.close()

	cut := b.Checkpoint.Size
	acc, err := rootsAt(base)(cut, jcp.Size)
	if err != nil {
		return refuseJ("%s: %v", segment.BaseFile, err)
	}
	if w := b.witness; w != nil && w.Size <= jcp.Size {
		acc.want[w.Size] = true
	}
	folder, err := base.Folder()
	if err != nil {
		return refuseJ("%s: %v", segment.BaseFile, err)
	}
	if err := checkBaseWriters(base, jcp.Known()); err != nil {
		return refuseJ("%s: %v", segment.BaseFile, err)
	}
	in := &signedEvents{events: events, sigs: sigs, folder: folder}
	info := JournalInfo{Checkpoint: jcp, Skipped: map[string]int{}}
	seen := map[string]bool{}
	n := int64(base.FirstIndex)
	for {
		recs, err := in.next()
		if errors.Is(err, io.EOF) {
			break
		}
		var se *SignatureError
		if errors.As(err, &se) {
			return refuseJ("%v", se)
		}
		if err != nil {
			return refuseJ("%v", err)
		}
		for _, r := range recs {
			n++
			info.Last = eventInfo(r)
			if n > jcp.Size {
				continue // counted, refused below
			}
			acc.add(r.Raw)
			if n <= cut {
				continue
			}
			info.After++
			var destroyed []string
			switch body := r.Event.Body.(type) {
			case *event.KeyDeleted:
				destroyed = body.DestroyedMaterials
			case *event.KeyMaterialDeleted:
				destroyed = []string{body.MaterialID}
			default:
				info.Skipped[r.Event.Operation]++
				continue
			}
			ev := *r.Event
			ev.Index, ev.Prev, ev.Chain = 0, event.Hash{}, ""
			b.deletions = append(b.deletions, &ev)
			for _, id := range destroyed {
				if !seen[id] {
					seen[id] = true
					b.Deleted = append(b.Deleted, id)
				}
			}
		}
	}
	info.Events, info.Deletions = n, len(b.deletions)
	switch {
	case n < jcp.Size:
		return refuseJ("cut short: its signed checkpoint covers %d events, it holds %d (events were removed from its end)", jcp.Size, n)
	case n > jcp.Size:
		return refuseJ("%d events after its signed checkpoint (size %d) are covered by no checkpoint; sign one over the surviving ledger "+
			"(`keyledger serve` does every second and when it stops) and export again", n-jcp.Size, jcp.Size)
	case n < cut:
		return refuseJ("%d events, fewer than the backup's %d: it is older than the backup", n, cut)
	}
	if root, err := acc.rootAt(jcp.Size); err != nil || root != jcp.Root {
		return refuseJ("its events do not rebuild its signed checkpoint's root (an event was changed, dropped, inserted or reordered)")
	}
	if root, err := acc.rootAt(cut); err != nil || root != b.Checkpoint.Root {
		return refuseJ("its first %d events are not the backup's (another ledger, or a changed one)", cut)
	}
	if err := offline.CheckNamedWriters(jcp.Known(), in.folder.Known()); err != nil {
		return refuseJ("%v", err)
	}
	info.atWitness, info.atWitnessOK = witnessRoot(acc, b.witness)
	slices.Sort(b.Deleted)
	b.Journal = &info
	return nil
}
