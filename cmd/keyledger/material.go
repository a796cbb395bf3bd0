package main

import (
	"context"
	"fmt"
	"io"

	"github.com/keyledger/keyledger/ledger/backup"
	"github.com/keyledger/keyledger/ledger/material"
	"github.com/keyledger/keyledger/projections/keystate"
)

const materialUsage = `usage:
  keyledger material restore --from BACKUP --key KEY-ID [--data-dir D | --nats-url U]
      put back a key's material that no stored copy opens, from a backup, checked
      against the live ledger's commitment (server stopped on a data directory)
`

// materialCmd dispatches keyledger material subcommands.
func materialCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "restore" {
		fmt.Fprint(stderr, materialUsage)
		return 2
	}
	return materialRestore(args[1:], stdout, stderr)
}

// materialRestore restores one key's materials from a backup
// (backup.KeyCommitments, backup.RestoreMaterials).
func materialRestore(args []string, stdout, stderr io.Writer) int {
	fs, bf := ledgerFlagSet("material restore", stderr)
	from := fs.String("from", "", "the backup directory (keyledger backup --out)")
	keyID := fs.String("key", "", "the key whose material to restore")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	if *from == "" || *keyID == "" {
		fmt.Fprint(stderr, materialUsage)
		return 2
	}
	l, b, done, ok := openLedgerForAudit(bf, stderr)
	if !ok {
		return 1
	}
	defer done()
	ctx := context.Background()
	want, err := backup.KeyCommitments(ctx, l, keystate.New(), *keyID)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger %v\n", err)
		return 1
	}
	mats, err := b.OpenMaterials(ctx, material.Config{})
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	outcomes, err := backup.RestoreMaterials(ctx, *from, mats, want)
	code := 0
	for _, o := range outcomes {
		fmt.Fprintf(stdout, "material %s of key %s: %s\n", o.ID, *keyID, o.Result)
		if !o.OK {
			code = 1
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "keyledger %v\n", err)
		return 1
	}
	return code
}
