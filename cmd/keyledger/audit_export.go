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
	n := 0
	var msgs []offline.MessageSignature // the messages the events came from, in order
	if *format == "cloudtrail" {
		w.WriteString(`{"Records":[`)
	}
	last, _ := l.LastStreamSeq(ctx)
	meter := newMeter("audit export", last, stderr)
	_, err := l.Replay(ctx, chain.Head{}, func(r event.Record) error {
		meter.Add(r.Seq, 1)
		if (!since.IsZero() && r.Event.Time.Before(since)) || (!until.IsZero() && !r.Event.Time.Before(until)) {
			return nil
		}
		if k := len(msgs); k == 0 || msgs[k-1].Seq != r.Seq {
			msgs = append(msgs, offline.MessageSignature{Seq: r.Seq})
		}
		msgs[len(msgs)-1].Events++
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
		n++
		return nil
	})
	meter.Done()
	if *format == "cloudtrail" {
		w.WriteString("\n]}\n")
	}
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if file != nil {
		file.Close()
	}
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	if *out != "" && *format == "jsonl" && since.IsZero() && until.IsZero() {
		if base := l.Base(); !base.Empty() {
			// The ledger starts after removed segments: verify it with the
			// archives that hold them (audit verify --offline --archive).
			raw, _ := json.MarshalIndent(base, "", "  ")
			if err := os.WriteFile(filepath.Join(*out, segment.BaseFile), append(raw, '\n'), 0o644); err != nil {
				fmt.Fprintf(stderr, "keyledger: %v\n", err)
				return 1
			}
		}
		if err := exportSignatures(ctx, l, msgs, filepath.Join(*out, offline.SignaturesFile)); err != nil {
			fmt.Fprintf(stderr, "keyledger: writer signatures: %v\n", err)
			return 1
		}
		cps, err := b.ReadCheckpoints(ctx, bf.stream)
		if err == nil {
			signed, err := cps.Latest(ctx)
			if err == nil {
				err = os.WriteFile(filepath.Join(*out, offline.CheckpointFile), signed, 0o644)
			}
			if err != nil && !errors.Is(err, ledger.ErrNoCheckpoint) {
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

// exportSignatures writes the writer signature of every message the
// exported events came from (msgs, in stream order), read back from the
// stream with its headers.
func exportSignatures(ctx context.Context, l *ledger.Ledger, msgs []offline.MessageSignature, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	i := 0
	errDone := errors.New("done")
	err = l.Messages(ctx, func(m chain.Message) error {
		if i == len(msgs) {
			return errDone
		}
		if m.Seq != msgs[i].Seq {
			return nil // quarantined: not exported
		}
		msgs[i].Writer, msgs[i].Signature = m.Writer, m.Signature
		line, _ := json.Marshal(msgs[i])
		w.Write(line)
		w.WriteByte('\n')
		i++
		return nil
	})
	if errors.Is(err, errDone) || (err == nil && i == len(msgs)) {
		err = nil
	} else if err == nil {
		err = fmt.Errorf("%d messages not found on the stream", len(msgs)-i)
	}
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
