// Package export writes a ledger's events out of the deployment: as JSON
// lines (each event's exact stored bytes, the offline form package
// offline verifies) or in another Format (CloudTrail records, from
// projections/cloudtrail), optionally a time window, to a writer or into
// a directory.
//
// A whole-ledger export of JSON lines into a directory is verifiable with
// nothing but the checkpoint verifier key: beside the events it writes
// every message's writer signature (offline.SignaturesFile), the newest
// signed checkpoint (offline.CheckpointFile) and, when the live ledger
// starts after removed segments, its base (segment.BaseFile), to be
// verified with the archives that hold what came before.
//
// Export reads the ledger once, message by message, folding each as every
// reader does (authenticated, linked, quarantined if not); it keeps
// nothing per message, so memory does not grow with the ledger. It never
// sees key material: events hold none. One call runs at a time per
// directory.
package export

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/checkpoint"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/offline"
	"github.com/keyledger/keyledger/ledger/segment"
)

// Format writes events in one export format.
type Format interface {
	// File is the file the events go to in an export directory.
	File() string
	// Begin and End write what comes before the first event and after
	// the last; Event writes one, n events having been written before it.
	Begin(w io.Writer) error
	Event(w io.Writer, r event.Record, n int) error
	End(w io.Writer) error
}

// JSONLines is the offline form: each event's exact stored bytes, one a
// line (offline.EventsFile).
type JSONLines struct{}

// File is offline.EventsFile.
func (JSONLines) File() string { return offline.EventsFile }

// Begin writes nothing.
func (JSONLines) Begin(io.Writer) error { return nil }

// Event writes the event's stored bytes and a newline.
func (JSONLines) Event(w io.Writer, r event.Record, _ int) error {
	if _, err := w.Write(r.Raw); err != nil {
		return err
	}
	_, err := w.Write([]byte{'\n'})
	return err
}

// End writes nothing.
func (JSONLines) End(io.Writer) error { return nil }

// CheckpointReader reads the newest stored signed checkpoint
// (checkpoint.ErrNone when none was stored).
type CheckpointReader interface {
	Latest(ctx context.Context) ([]byte, error)
}

// Request says what to export and where.
type Request struct {
	Ledger *ledger.Ledger // opened read-only is enough
	Format Format         // nil: JSONLines
	// Since and Until, when set, keep the events at or after Since and
	// before Until.
	Since, Until time.Time
	// Dir is the directory to write into (created if missing); when
	// empty the events go to Out.
	Dir string
	Out io.Writer
	// Checkpoints gives the signed checkpoint a whole-ledger export to a
	// directory carries; nil when the deployment stores none.
	Checkpoints CheckpointReader
	// Progress, if set, is called after each message with its stream
	// sequence and how many events it held.
	Progress func(seq, events uint64)
}

// Result is what Export wrote.
type Result struct {
	Events int // events written
	// Quarantined is how many ledger messages were not exported because
	// the fold refused them (forged, replayed, garbage, changed on disk):
	// an alarm, reported by audit verify.
	Quarantined int
}

// Whole reports whether req exports the whole ledger, verifiably, into a
// directory: JSON lines, no window.
func (req Request) Whole() bool {
	_, jsonl := req.Format.(JSONLines)
	return req.Dir != "" && (req.Format == nil || jsonl) && req.Since.IsZero() && req.Until.IsZero()
}

// in reports whether an event's time is in the window.
func (req Request) in(t time.Time) bool {
	return (req.Since.IsZero() || !t.Before(req.Since)) && (req.Until.IsZero() || t.Before(req.Until))
}

// Export writes the ledger's events as req asks. Its Result counts what
// was written and quarantined even when it fails.
func Export(ctx context.Context, req Request) (Result, error) {
	whole := req.Whole()
	if req.Format == nil {
		req.Format = JSONLines{}
	}
	var out []*output // closed in order; the first error wins
	events := &output{w: bufio.NewWriter(req.Out)}
	var sigs *output
	if req.Dir != "" {
		if err := os.MkdirAll(req.Dir, 0o755); err != nil {
			return Result{}, err
		}
		var err error
		if events, err = create(filepath.Join(req.Dir, req.Format.File())); err != nil {
			return Result{}, err
		}
		out = append(out, events)
		// A whole-ledger export carries each message's writer signature,
		// written in the same pass as the events.
		if whole {
			if sigs, err = create(filepath.Join(req.Dir, offline.SignaturesFile)); err != nil {
				events.close()
				return Result{}, fmt.Errorf("writer signatures: %w", err)
			}
			out = append(out, sigs)
		}
	} else {
		out = append(out, events)
	}
	res, err := walk(ctx, req, events.w, sigs)
	for _, o := range out {
		if cerr := o.close(); err == nil {
			err = cerr
		}
	}
	if err != nil || !whole {
		return res, err
	}
	return res, writeAnchors(ctx, req)
}

// walk writes the events, and with sigs their messages' signatures.
func walk(ctx context.Context, req Request, w *bufio.Writer, sigs *output) (Result, error) {
	var res Result
	if err := req.Format.Begin(w); err != nil {
		return res, err
	}
	f, err := req.Ledger.Folder() // after removed segments, the fold starts where the live ledger does
	if err != nil {
		return res, err
	}
	err = req.Ledger.Messages(ctx, func(m chain.Message) error {
		recs, err := f.Fold(m)
		var q *chain.Quarantine
		if errors.As(err, &q) {
			res.Quarantined++
			return nil
		}
		if err != nil {
			return err
		}
		if req.Progress != nil {
			req.Progress(m.Seq, uint64(len(recs)))
		}
		k := 0
		for _, r := range recs {
			if !req.in(r.Event.Time) {
				continue
			}
			if err := req.Format.Event(w, r, res.Events); err != nil {
				return err
			}
			k++
			res.Events++
		}
		if sigs != nil && k > 0 {
			line, _ := json.Marshal(offline.Signature(m, recs, k))
			if _, err := sigs.w.Write(append(line, '\n')); err != nil {
				return err
			}
		}
		return nil
	})
	if eerr := req.Format.End(w); err == nil {
		err = eerr
	}
	return res, err
}

// writeAnchors writes what a whole export is verified against: the base
// after removed segments, and the newest signed checkpoint.
func writeAnchors(ctx context.Context, req Request) error {
	l := req.Ledger
	if l.FirstIndex() > 0 {
		// The ledger starts after removed segments: the export carries
		// their base, to be verified with the archives that hold them.
		raw, _ := json.MarshalIndent(l.Base(), "", "  ")
		if err := os.WriteFile(filepath.Join(req.Dir, segment.BaseFile), append(raw, '\n'), 0o644); err != nil {
			return err
		}
	}
	if req.Checkpoints == nil {
		return nil
	}
	signed, err := req.Checkpoints.Latest(ctx)
	if err == nil {
		err = os.WriteFile(filepath.Join(req.Dir, offline.CheckpointFile), signed, 0o644)
	}
	if err != nil && !errors.Is(err, checkpoint.ErrNone) {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// output is a buffered file, or the caller's writer (f nil).
type output struct {
	f *os.File
	w *bufio.Writer
}

func create(path string) (*output, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &output{f: f, w: bufio.NewWriter(f)}, nil
}

// close flushes, and closes the file if there is one.
func (o *output) close() error {
	err := o.w.Flush()
	if o.f != nil {
		if cerr := o.f.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
