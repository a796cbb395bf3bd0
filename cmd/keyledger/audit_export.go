package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/checkpoint"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/offline"
	"github.com/keyledger/keyledger/ledger/segment"
	"github.com/keyledger/keyledger/projections/cloudtrail"
)

// auditExport writes the ledger's events (optionally a time window) as
// JSON lines (the exact stored bytes) or CloudTrail records. With --out and
// no window it also writes the newest signed checkpoint, making the
// directory verifiable offline.
func auditExport(args []string, stdout, stderr io.Writer) int {
	fs, bf := ledgerFlagSet("audit export", stderr)
	format := fs.String("format", "jsonl", "jsonl (exact event bytes) or cloudtrail")
	sinceFlag := fs.String("since", "", "only events at or after this time (RFC 3339 or YYYY-MM-DD)")
	untilFlag := fs.String("until", "", "only events before this time")
	out := fs.String("out", "", "write into this directory (events.jsonl or cloudtrail.json, and checkpoint) instead of stdout")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	since, err1 := parseTimeFlag(*sinceFlag)
	until, err2 := parseTimeFlag(*untilFlag)
	if err := errors.Join(err1, err2); err != nil || (*format != "jsonl" && *format != "cloudtrail") {
		fmt.Fprintf(stderr, "keyledger audit export: bad flags: %v (format %q)\n", err, *format)
		return 2
	}
	l, b, done, ok := openLedgerForAudit(bf, stderr)
	if !ok {
		return 1
	}
	defer done()
	w := bufio.NewWriter(stdout)
	var file *os.File
	if *out != "" {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			fmt.Fprintf(stderr, "keyledger: %v\n", err)
			return 1
		}
		name := offline.EventsFile
		if *format == "cloudtrail" {
			name = "cloudtrail.json"
		}
		f, err := os.Create(filepath.Join(*out, name))
		if err != nil {
			fmt.Fprintf(stderr, "keyledger: %v\n", err)
			return 1
		}
		file, w = f, bufio.NewWriter(f)
	}
	ctx := context.Background()
	// A whole-ledger export to a directory carries each message's writer
	// signature, written in the same pass as the events.
	whole := *out != "" && *format == "jsonl" && since.IsZero() && until.IsZero()
	var sigs *os.File
	var sw *bufio.Writer
	if whole {
		f, err := os.Create(filepath.Join(*out, offline.SignaturesFile))
		if err != nil {
			fmt.Fprintf(stderr, "keyledger: writer signatures: %v\n", err)
			return 1
		}
		sigs, sw = f, bufio.NewWriter(f)
	}
	if *format == "cloudtrail" {
		w.WriteString(`{"Records":[`)
	}
	last, _ := l.LastStreamSeq(ctx)
	meter := newMeter("audit export", last, stderr)
	n := 0
	quarantined, err := exportEvents(ctx, l, func(m chain.Message, recs []event.Record) {
		meter.Add(m.Seq, uint64(len(recs)))
		k := 0
		for _, r := range recs {
			if (!since.IsZero() && r.Event.Time.Before(since)) || (!until.IsZero() && !r.Event.Time.Before(until)) {
				continue
			}
			if *format == "jsonl" {
				w.Write(r.Raw)
				w.WriteByte('\n')
			} else {
				if n > 0 {
					w.WriteByte(',')
				}
				b, _ := json.Marshal(cloudtrail.Render(r))
				w.WriteString("\n")
				w.Write(b)
			}
			k++
			n++
		}
		if sw != nil && k > 0 {
			line, _ := json.Marshal(offline.Signature(m, recs, k))
			sw.Write(line)
			sw.WriteByte('\n')
		}
	})
	meter.Done()
	if quarantined > 0 {
		fmt.Fprintf(stderr, "keyledger: ALARM: %d ledger message(s) quarantined (see `keyledger audit verify`): not exported\n", quarantined)
	}
	if *format == "cloudtrail" {
		w.WriteString("\n]}\n")
	}
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if file != nil {
		if cerr := file.Close(); err == nil {
			err = cerr
		}
	}
	if sigs != nil {
		if ferr := sw.Flush(); err == nil {
			err = ferr
		}
		if cerr := sigs.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	if whole {
		if l.FirstIndex() > 0 {
			// The ledger starts after removed segments: the export carries
			// their base, to be verified with the archives that hold them
			// (audit verify --offline --archive).
			raw, _ := json.MarshalIndent(l.Base(), "", "  ")
			if err := os.WriteFile(filepath.Join(*out, segment.BaseFile), append(raw, '\n'), 0o644); err != nil {
				fmt.Fprintf(stderr, "keyledger: %v\n", err)
				return 1
			}
		}
		cps, err := b.ReadCheckpoints(ctx, bf.stream)
		if err == nil {
			signed, err := cps.Latest(ctx)
			if err == nil {
				err = os.WriteFile(filepath.Join(*out, offline.CheckpointFile), signed, 0o644)
			}
			if err != nil && !errors.Is(err, checkpoint.ErrNone) {
				fmt.Fprintf(stderr, "keyledger: checkpoint: %v\n", err)
				return 1
			}
		}
	}
	if *out != "" {
		fmt.Fprintf(stderr, "exported %d events to %s\n", n, *out)
	}
	return 0
}

// exportEvents reads the ledger once, message by message, folding each as
// every reader does (chain.Folder: authenticated, linked, quarantined if
// not), and hands fn each accepted message with its events. It keeps
// nothing per message, so memory does not grow with the ledger. It
// returns how many messages were quarantined.
func exportEvents(ctx context.Context, l *ledger.Ledger, fn func(chain.Message, []event.Record)) (int, error) {
	f, err := l.Folder() // after removed segments, the fold starts where the live ledger does
	if err != nil {
		return 0, err
	}
	quarantined := 0
	err = l.Messages(ctx, func(m chain.Message) error {
		recs, err := f.Fold(m)
		var q *chain.Quarantine
		if errors.As(err, &q) {
			quarantined++
			return nil
		}
		if err != nil {
			return err
		}
		fn(m, recs)
		return nil
	})
	return quarantined, err
}
