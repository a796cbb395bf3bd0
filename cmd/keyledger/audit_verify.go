package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/offline"
)

// auditVerify walks the whole ledger and checks every link, or checks an
// offline export against its signed checkpoint.
func auditVerify(args []string, stdout, stderr io.Writer) int {
	fs, bf := ledgerFlagSet("audit verify", stderr)
	offline := fs.String("offline", "", "verify an export directory (events.jsonl + checkpoint) instead of a ledger")
	pubkey := fs.String("pubkey", "", "with --offline: the checkpoint verifier key file (note vkey)")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	if *offline != "" {
		return verifyOffline(*offline, *pubkey, stdout, stderr)
	}
	l, _, done, ok := openLedgerForAudit(bf, stderr)
	if !ok {
		return 1
	}
	defer done()
	ctx := context.Background()
	start := time.Now()
	head, err := chain.Verify(ctx, l)
	took := time.Since(start)
	var broken *chain.BrokenLinkError
	switch {
	case errors.As(err, &broken):
		fmt.Fprintf(stdout, "FAILED after %d good events\nfirst broken link: stream sequence %d, event index %d\n  expected: %s\n  found:    %s\n",
			head.Count, broken.Seq, broken.Index, broken.Expected, broken.Found)
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	rate := float64(head.Count) / took.Seconds()
	if head.Empty() {
		fmt.Fprintln(stdout, "OK: 0 events verified (the ledger is empty)")
		return 0
	}
	fmt.Fprintf(stdout, "OK: %d events verified in %s (%.0f events/s)\nhead: %s (index %d, stream sequence %d)\n",
		head.Count, took.Round(time.Millisecond), rate, head.Hash, head.Index, head.Seq)
	return 0
}

// verifyOffline checks an export directory with nothing but the checkpoint
// verifier key (see package offline) and prints the outcome.
func verifyOffline(dir, pubkeyFile string, stdout, stderr io.Writer) int {
	vkey, err := os.ReadFile(pubkeyFile)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: --pubkey: %v\n", err)
		return 2
	}
	signed, err := os.ReadFile(filepath.Join(dir, offline.CheckpointFile))
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 2
	}
	events, err := os.ReadFile(filepath.Join(dir, offline.EventsFile))
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 2
	}
	res, err := offline.Verify(events, signed, string(vkey))
	var sigErr *offline.SignatureError
	switch {
	case errors.As(err, &sigErr):
		fmt.Fprintf(stdout, "FAILED: the checkpoint's signature does not verify with %s: %v\n", pubkeyFile, sigErr.Err)
		return 1
	case err != nil:
		fmt.Fprintf(stdout, "FAILED: %v\n", err)
		return 1
	}
	extra := ""
	if n := res.Uncovered(); n > 0 {
		extra = fmt.Sprintf(" (%d later events are chain-linked but not yet covered by a checkpoint)", n)
	}
	cp := res.Checkpoint
	fmt.Fprintf(stdout, "OK: %d events; checkpoint %q of size %d verified with %s%s\nroot: %s\n",
		res.Events, cp.Origin, cp.Size, keyName(string(vkey)), extra, cp.Root)
	return 0
}

// keyName is the name in a note verifier key ("name+hash+key").
func keyName(vkey string) string {
	name, _, _ := strings.Cut(strings.TrimSpace(vkey), "+")
	return name
}
