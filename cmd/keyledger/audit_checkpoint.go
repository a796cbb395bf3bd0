package main

import (
	"context"
	"fmt"
	"io"
)

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
	signed, err := latestCheckpoint(ctx, b, bf.stream)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	stdout.Write(signed)
	return 0
}
