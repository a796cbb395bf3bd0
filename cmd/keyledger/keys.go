package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/projections/timetravel"
)

// keysDescribe answers from the ledger what a key was at a time:
// keyledger keys describe KEY_ID --as-of 2026-06-01T00:00:00Z
func keysDescribe(args []string, stdout, stderr io.Writer) int {
	fs, bf := ledgerFlagSet("keys describe", stderr)
	asOfFlag := fs.String("as-of", "", "the time to answer for (RFC 3339 or YYYY-MM-DD; default now)")
	region := fs.String("region", "us-east-1", "region in ARNs")
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
	l, _, done, ok := openLedgerForAudit(bf, stderr)
	if !ok {
		return 1
	}
	defer done()
	f := timetravel.NewFolder(asOf)
	if _, err := l.Replay(context.Background(), chain.Head{}, func(r event.Record) error {
		f.Add(r)
		return nil
	}); err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.Encode(f.Describe(keyID, *region))
	return 0
}
