package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/keyledger/keyledger/ledger/export"
	"github.com/keyledger/keyledger/projections/cloudtrail"
)

// auditExport writes the ledger's events (optionally a time window) as
// JSON lines (the exact stored bytes) or CloudTrail records (package
// export). With --out and no window it also writes the writer signatures
// and the newest signed checkpoint, making the directory verifiable
// offline.
func auditExport(args []string, stdout, stderr io.Writer) int {
	fs, bf := ledgerFlagSet("audit export", stderr)
	format := fs.String("format", "jsonl", "jsonl (exact event bytes) or cloudtrail")
	sinceFlag := fs.String("since", "", "only events at or after this time (RFC 3339 or YYYY-MM-DD)")
	untilFlag := fs.String("until", "", "only events before this time")
	out := fs.String("out", "", "write into this directory (events.jsonl or cloudtrail.json, and checkpoint) instead of stdout")
	salvageFlag := fs.Bool("salvage", false, "read a damaged --data-dir's block files directly (server stopped): save every event that\n"+
		"still checks out into --out and report what is lost (exit 3 when anything is)")
	pubkey := fs.String("pubkey", "", "with --salvage: the checkpoint verifier key file (default <data-dir>/checkpoint.key.pub)")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	if *salvageFlag {
		return auditSalvage(bf, *out, *pubkey, stdout, stderr)
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
	ctx := context.Background()
	req := export.Request{Ledger: l, Format: export.JSONLines{}, Since: since, Until: until, Dir: *out, Out: stdout}
	if *format == "cloudtrail" {
		req.Format = cloudtrail.LogFile{}
	}
	if req.Whole() {
		if cps, err := b.ReadCheckpoints(ctx, bf.stream); err == nil {
			req.Checkpoints = cps
		}
	}
	last, _ := l.LastStreamSeq(ctx)
	meter := newMeter("audit export", last, stderr)
	req.Progress = meter.Add
	res, err := export.Export(ctx, req)
	meter.Done()
	if res.Quarantined > 0 {
		fmt.Fprintf(stderr, "keyledger: ALARM: %d ledger message(s) quarantined (see `keyledger audit verify`): not exported\n", res.Quarantined)
	}
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	if *out != "" {
		fmt.Fprintf(stderr, "exported %d events to %s\n", res.Events, *out)
	}
	return 0
}
