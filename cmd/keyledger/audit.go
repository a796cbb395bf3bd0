package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/backend"
	"github.com/keyledger/keyledger/ledger/chain"
)

// openLedgerForAudit opens the ledger of a running deployment (--nats-url)
// or, with the server stopped, of a data directory.
func openLedgerForAudit(bf *backendFlags, stderr io.Writer) (*ledger.Ledger, *backend.Backend, func(), bool) {
	release := func() {}
	if bf.natsURL == "" {
		// Directly on a data directory: the server must be stopped.
		if _, err := os.Stat(filepath.Join(bf.dataDir, "jetstream")); err != nil {
			fmt.Fprintf(stderr, "keyledger: no ledger under %s: %v\n", bf.dataDir, err)
			return nil, nil, nil, false
		}
		r, err := lockDataDir(bf.dataDir)
		if err != nil {
			fmt.Fprintf(stderr, "keyledger: %v\n", err)
			return nil, nil, nil, false
		}
		release = r
	}
	b, err := bf.open("", false)
	if err != nil {
		release()
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return nil, nil, nil, false
	}
	l, err := b.OpenLedger(context.Background(), ledger.Config{Stream: bf.stream})
	if err != nil {
		b.Close()
		release()
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return nil, nil, nil, false
	}
	return l, b, func() { b.Close(); release() }, true
}

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
