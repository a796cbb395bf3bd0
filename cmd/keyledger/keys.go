package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/keyledger/keyledger/gateway/node"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/projections/timetravel"
)

// keysDescribe answers from the ledger what a key was at a time:
// keyledger keys describe KEY_ID --as-of 2026-06-01T00:00:00Z
func keysDescribe(args []string, stdout, stderr io.Writer) int {
	fs, bf := ledgerFlagSet("keys describe", stderr)
	asOfFlag := fs.String("as-of", "", "the time to answer for (RFC 3339 or YYYY-MM-DD; default now)")
	region := fs.String("region", "us-east-1", "region in ARNs")
	pubkey := fs.String("pubkey", "", "checkpoint verifier key file, whose checkpoints name the writers trusted to sign snapshots\n(default <data-dir>/checkpoint.key.pub)")
	if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
		fmt.Fprintln(stderr, "usage: keyledger keys describe KEY_ID [--as-of T] [--data-dir D | --nats-url U]")
		return 2
	}
	keyID := args[0]
	if err := parseFlags(fs, args[1:]); err != nil {
		return 2
	}
	asOf := time.Now()
	if *asOfFlag != "" {
		t, err := parseTimeFlag(*asOfFlag)
		if err != nil {
			fmt.Fprintf(stderr, "keyledger: --as-of: %v\n", err)
			return 2
		}
		asOf = t
	}
	l, b, done, ok := openLedgerForAudit(bf, stderr)
	if !ok {
		return 1
	}
	defer done()
	ctx := context.Background()
	keyFile := *pubkey
	if keyFile == "" {
		keyFile = bf.checkpointVerifierFile()
	}
	// From the newest snapshot at or before the time, to the first event
	// after it: the answer of a fold from the first event, at a cost that
	// follows the distance from the snapshot.
	f := timetravel.NewFolder(asOf)
	var resumeAt *ledger.Resume
	if err := checkBase(ctx, l, b, bf, keyFile); err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	if im := snapshotImage(ctx, l, b, bf, keyFile, asOf, stderr); im != nil {
		if g, err := timetravel.Resume(asOf, im); err == nil {
			r, _ := node.ResumeAt(im) // writers checked with the snapshot
			f, resumeAt = g, &r
		}
	}
	var err error
	if resumeAt != nil {
		_, err = l.ReplayFrom(ctx, *resumeAt, f.Fold)
	} else if first := l.FirstIndex(); first > 0 {
		// The events before the live ledger were removed: a fold from
		// where it starts would miss the key's history.
		fmt.Fprintf(stderr, "keyledger: no snapshot at or before %s, and the live ledger starts at event %d after removed segments: "+
			"answer from the archives (audit verify --offline --archive)\n", asOf.Format(time.RFC3339), first)
		return 1
	} else {
		_, err = l.Replay(ctx, chain.Head{}, f.Fold)
	}
	if err != nil && !errors.Is(err, timetravel.ErrPassed) {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.Encode(f.Describe(keyID, *region))
	return 0
}
