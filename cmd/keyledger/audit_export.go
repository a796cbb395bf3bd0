package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/projections/cloudtrail"
)

func parseTimeFlag(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time or a date", v)
}

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
		name := "events.jsonl"
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
	if *format == "cloudtrail" {
		w.WriteString(`{"Records":[`)
	}
	_, err := l.Replay(ctx, chain.Head{}, func(r event.Record) error {
		if (!since.IsZero() && r.Event.Time.Before(since)) || (!until.IsZero() && !r.Event.Time.Before(until)) {
			return nil
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
		n++
		return nil
	})
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
		cps, err := b.OpenCheckpoints(ctx, bf.stream)
		if err == nil {
			signed, err := cps.Latest(ctx)
			if err == nil {
				err = os.WriteFile(filepath.Join(*out, "checkpoint"), signed, 0o644)
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

// verifyOffline checks an exported ledger with nothing but the checkpoint
// verifier key: the signature, every chain link, and that the events
// rebuild exactly the signed Merkle root (which catches a changed, dropped,
// inserted or reordered event, and a truncated tail).
func verifyOffline(dir, pubkeyFile string, stdout, stderr io.Writer) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stdout, "FAILED: "+format+"\n", args...)
		return 1
	}
	vkey, err := os.ReadFile(pubkeyFile)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: --pubkey: %v\n", err)
		return 2
	}
	signed, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 2
	}
	cp, err := merkle.Open(signed, string(vkey))
	if err != nil {
		return fail("the checkpoint's signature does not verify with %s: %v", pubkeyFile, err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "events.jsonl"))
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 2
	}
	var lines [][]byte
	if len(data) > 0 {
		lines = bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	}
	linker := chain.NewLinker(chain.Head{})
	var tree merkle.Tree
	for i, raw := range lines {
		if _, err := linker.Link(uint64(i+1), raw); err != nil {
			var bl *chain.BrokenLinkError
			if errors.As(err, &bl) {
				return fail("chain broken at line %d (event index %d): expected %s, found %s", i+1, bl.Index, bl.Expected, bl.Found)
			}
			return fail("line %d: %v", i+1, err)
		}
		tree.Append(raw)
	}
	if int64(len(lines)) < cp.Size {
		return fail("truncated: the signed checkpoint covers %d events, the export has %d", cp.Size, len(lines))
	}
	root, err := tree.Root(cp.Size)
	if err != nil || root != cp.Root {
		return fail("the first %d events do not match the signed checkpoint's root (an event was changed, dropped, inserted or reordered)", cp.Size)
	}
	extra := ""
	if n := int64(len(lines)) - cp.Size; n > 0 {
		extra = fmt.Sprintf(" (%d later events are chain-linked but not yet covered by a checkpoint)", n)
	}
	fmt.Fprintf(stdout, "OK: %d events; checkpoint %q of size %d verified with %s%s\nroot: %s\n",
		len(lines), cp.Origin, cp.Size, strings.TrimSpace(firstField(string(vkey))), extra, tlog.Hash(root))
	return 0
}

func firstField(vkey string) string {
	name, _, _ := strings.Cut(strings.TrimSpace(vkey), "+")
	return name
}

// auditCheckpoint prints the newest stored signed checkpoint.
func auditCheckpoint(args []string, stdout, stderr io.Writer) int {
	fs, bf := ledgerFlagSet("audit checkpoint", stderr)
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	_, b, done, ok := openLedgerForAudit(bf, stderr)
	if !ok {
		return 1
	}
	defer done()
	ctx := context.Background()
	cps, err := b.OpenCheckpoints(ctx, bf.stream)
	if err == nil {
		var signed []byte
		if signed, err = cps.Latest(ctx); err == nil {
			stdout.Write(signed)
			return 0
		}
	}
	fmt.Fprintf(stderr, "keyledger: %v\n", err)
	return 1
}

// auditProve prints an inclusion proof (--index) or a consistency proof
// (--old), computed from the ledger.
func auditProve(args []string, stdout, stderr io.Writer) int {
	fs, bf := ledgerFlagSet("audit prove", stderr)
	index := fs.Int64("index", -1, "prove that event N is in the tree")
	old := fs.Int64("old", -1, "prove that the tree of --size extends the tree of this size")
	size := fs.Int64("size", 0, "tree size (default: the whole ledger)")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	if (*index < 0) == (*old < 0) {
		fmt.Fprint(stderr, auditUsage)
		return 2
	}
	l, _, done, ok := openLedgerForAudit(bf, stderr)
	if !ok {
		return 1
	}
	defer done()
	var tree merkle.Tree
	var leaf []byte
	if _, err := l.Replay(context.Background(), chain.Head{}, func(r event.Record) error {
		if int64(r.Event.Index) == *index {
			leaf = r.Raw
		}
		return tree.Append(r.Raw)
	}); err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	if *size == 0 {
		*size = tree.Size()
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if *index >= 0 {
		p, err := tree.Inclusion(*index, *size)
		if err != nil {
			fmt.Fprintf(stderr, "keyledger: %v\n", err)
			return 1
		}
		root, _ := tree.Root(*size)
		enc.Encode(map[string]any{"index": *index, "size": *size, "root": root, "leafHash": tlog.RecordHash(leaf),
			"event": json.RawMessage(leaf), "proof": p})
		return 0
	}
	p, err := tree.Consistency(*old, *size)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	oldRoot, _ := tree.Root(*old)
	newRoot, _ := tree.Root(*size)
	enc.Encode(map[string]any{"oldSize": *old, "newSize": *size, "oldRoot": oldRoot, "newRoot": newRoot, "proof": p})
	return 0
}
