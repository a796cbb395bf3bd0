package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/keyledger/keyledger/gateway/history"
)

// keysDescribe answers from the ledger what a key was at a time
// (history.Describe):
// keyledger keys describe KEY_ID --as-of 2026-06-01T00:00:00Z
func keysDescribe(args []string, stdout, stderr io.Writer) int {
	fs, bf := ledgerFlagSet("keys describe", stderr)
	asOfFlag := fs.String("as-of", "", "the time to answer for (RFC 3339 or YYYY-MM-DD; default now)")
	region := fs.String("region", "", "region in ARNs (default: the region the ledger recorded each key in)")
	pubkey := fs.String("pubkey", "", "checkpoint verifier key file, whose checkpoints name the writers trusted to sign snapshots\n(default <data-dir>/checkpoint.key.pub)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: keyledger keys describe KEY_ID [--as-of T] [--data-dir D | --nats-url U]")
		fs.PrintDefaults()
	}
	if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
		if parseFlags(fs, args) == nil { // -h prints the flags; anything else the usage too
			fs.Usage()
		}
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
	keyFile := *pubkey
	if keyFile == "" {
		keyFile = bf.checkpointVerifierFile()
	}
	ctx := context.Background()
	answer, err := history.Describe(ctx, historySource(ctx, l, b, bf, keyFile, stderr), keyID, *region, asOf)
	var removed *history.RemovedError
	switch {
	case errors.As(err, &removed):
		fmt.Fprintf(stderr, "keyledger: no snapshot at or before %s, and the live ledger starts at event %d after removed segments: "+
			"answer from the archives (audit verify --offline --archive)\n", removed.AsOf.Format(time.RFC3339), removed.FirstIndex)
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.Encode(answer)
	return 0
}
