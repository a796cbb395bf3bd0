package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/keyledger/keyledger/ledger/proof"
)

// auditProve prints an inclusion proof (--index) or a consistency proof
// (--old), computed from the ledger (package proof).
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
	ctx := context.Background()
	var p any
	var err error
	if *index >= 0 {
		p, err = proof.Include(ctx, l, *index, *size)
	} else {
		p, err = proof.Extend(ctx, l, *old, *size)
	}
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.Encode(p)
	return 0
}
