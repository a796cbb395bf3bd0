package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"golang.org/x/mod/sumdb/tlog"
)

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
	// After removed segments the tree continues from the base's frontier:
	// proofs for events from the base on (older ones: the archive's).
	tree, err := l.MemTree()
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	var leaf []byte
	if _, err := l.Replay(context.Background(), chain.Head{}, func(r event.Record) error {
		if int64(r.Pos) == *index {
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
