package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/keyledger/keyledger/ledger/backup"
	"github.com/keyledger/keyledger/ledger/material"
	"github.com/keyledger/keyledger/projections/keystate"
)

// backupCmd writes a consistent, verifiable backup of a stopped data
// directory or a running deployment (see package backup).
func backupCmd(args []string, stdout, stderr io.Writer) int {
	fs, bf := ledgerFlagSet("backup", stderr)
	out := fs.String("out", "", "write the backup into this new directory (required)")
	cpKey := fs.String("checkpoint-key", "", "checkpoint signing key, to sign a checkpoint covering the whole ledger\n(default <data-dir>/checkpoint.key when backing up a data directory; without one the\nbackup ends at the newest stored checkpoint)")
	pubkey := fs.String("pubkey", "", "checkpoint verifier key (default <checkpoint-key>.pub, or <data-dir>/checkpoint.key.pub)")
	region := fs.String("region", "us-east-1", "region naming the log, if no checkpoint was ever stored")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	defer profileHeapPeaks()()
	if *out == "" {
		fmt.Fprintln(stderr, "keyledger backup: --out is required")
		return 2
	}
	if *cpKey == "" && bf.natsURL == "" {
		if p := bf.checkpointKeyFile(); fileExists(p) {
			*cpKey = p
		}
	}
	if *pubkey == "" {
		*pubkey = bf.checkpointVerifierFile()
		if *cpKey != "" {
			*pubkey = *cpKey + ".pub"
		}
	}
	vkey, err := os.ReadFile(*pubkey)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger backup: the checkpoint verifier key: %v\n", err)
		return 2
	}
	var signer note.Signer
	if *cpKey != "" {
		if signer, err = loadSigner(*cpKey); err != nil {
			fmt.Fprintf(stderr, "keyledger backup: %v\n", err)
			return 2
		}
	}
	l, b, done, ok := openLedgerForAudit(bf, stderr)
	if !ok {
		return 1
	}
	defer done()
	ctx := context.Background()
	cps, err := b.OpenCheckpoints(ctx, bf.stream)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger backup: %v\n", err)
		return 1
	}
	mats, err := b.OpenMaterials(ctx, material.Config{})
	if err != nil {
		fmt.Fprintf(stderr, "keyledger backup: %v\n", err)
		return 1
	}
	sum, err := backup.Write(ctx, backup.Source{
		Stream: bf.stream, Ledger: l, Checkpoints: cps, Materials: mats, Fold: keystate.New(),
		Verifier: string(vkey), Signer: signer, Origin: "keyledger-" + *region,
	}, *out)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger %v\n", err)
		return 1
	}
	signed := "the newest stored checkpoint"
	if sum.Signed {
		signed = "a checkpoint signed now"
	}
	fmt.Fprintf(stdout, "OK: backed up %d events and %d materials to %s, cut at %s (size %d)\n",
		sum.Events, sum.Materials, *out, signed, sum.Checkpoint.Size)
	if sum.Left > 0 {
		fmt.Fprintf(stdout, "%d newer events are not in this backup (no signing key given); the next backup takes them\n", sum.Left)
	}
	return 0
}

// loadSigner reads a checkpoint signing key (note skey) without creating one.
func loadSigner(path string) (note.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint signing key: %w", err)
	}
	defer clear(data)
	s, err := note.NewSigner(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, errors.New("checkpoint signing key: not a note signer key")
	}
	return s, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
