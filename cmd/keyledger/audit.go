package main

import (
	"context"
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
	// Readers never create or change the stream: a subscribe-only audit
	// identity may run them.
	l, err := b.OpenLedger(context.Background(), ledger.Config{Stream: bf.stream, ReadOnly: true})
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
	report, err := chain.Audit(ctx, l)
	took := time.Since(start)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	return printAudit(stdout, report, took)
}

// exitQuarantined is audit verify's status when the ledger holds messages
// that folding refused (forged, replayed, garbage, or changed on disk).
const exitQuarantined = 3

// printAudit reports a verified ledger: its head and writers, and every
// quarantined message.
func printAudit(stdout io.Writer, r chain.Report, took time.Duration) int {
	head := r.Head
	if n := len(r.Quarantined); n > 0 {
		fmt.Fprintf(stdout, "FAILED: %d message(s) quarantined: not applied by keyledger; the chain continues from the last valid event\n", n)
		for i, q := range r.Quarantined {
			if i == 20 {
				fmt.Fprintf(stdout, "  … and %d more\n", n-i)
				break
			}
			fmt.Fprintf(stdout, "  stream sequence %d (writer %q): %v\n", q.Seq, q.Writer, q.Reason)
		}
		q := r.Quarantined[0]
		fmt.Fprintf(stdout, "first quarantined: stream sequence %d: %v\n%d valid events; head: %s (index %d, stream sequence %d)\n",
			q.Seq, q.Reason, head.Count, head.Hash, head.Index, head.Seq)
		return exitQuarantined
	}
	if head.Empty() {
		fmt.Fprintln(stdout, "OK: 0 events verified (the ledger is empty)")
		return 0
	}
	rate := float64(head.Count) / took.Seconds()
	fmt.Fprintf(stdout, "OK: %d events verified in %s (%.0f events/s)\nhead: %s (index %d, stream sequence %d)\n",
		head.Count, took.Round(time.Millisecond), rate, head.Hash, head.Index, head.Seq)
	for id, pub := range r.Writers {
		fmt.Fprintf(stdout, "writer: %s (public key %s)\n", id, pub)
	}
	return 0
}
