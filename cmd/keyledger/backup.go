package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/keyledger/keyledger/ledger/backup"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/checkpoint"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/projections/keystate"
	"github.com/keyledger/keyledger/projections/resume"
)

// backupCmd writes a consistent, verifiable backup of a stopped data
// directory or a running deployment (see package backup). It only reads:
// against a running embedded server it connects with --nats-url and the
// read-only backup identity (<data-dir>/nats-backup.nk) and reads the
// per-material keys from --data-dir's slot file.
func backupCmd(args []string, stdout, stderr io.Writer) int {
	fs, bf := ledgerFlagSet("backup", stderr)
	out := fs.String("out", "", "write the backup into this new directory (required)")
	signingKey := fs.String("signing-key", "", "the backup signing key, which signs the manifest (required; kept apart from the data,\nnot in the data directory; created with its verifier key <file>.pub if missing: escrow the .pub)")
	cpKey := fs.String("checkpoint-key", "", "checkpoint signing key, to sign a checkpoint covering the whole ledger\n(default <data-dir>/checkpoint.key when backing up a data directory; without one the\nbackup ends at the newest stored checkpoint)")
	pubkey := fs.String("pubkey", "", "checkpoint verifier key (default <checkpoint-key>.pub, or <data-dir>/checkpoint.key.pub)")
	region := fs.String("region", "us-east-1", "region naming the log, if no checkpoint was ever stored")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	defer profileHeapPeaks()()
	if *out == "" || *signingKey == "" {
		fmt.Fprintln(stderr, "keyledger backup: --out and --signing-key are required")
		return 2
	}
	if _, err := os.Stat(*signingKey); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(stdout, "creating the backup signing key %s and its verifier key %s.pub: escrow %s.pub with the checkpoint verifier key; restore needs it\n",
			*signingKey, *signingKey, *signingKey)
	}
	manifestSigner, _, err := merkle.LoadOrCreateKey(*signingKey, "keyledger-backup")
	if err != nil {
		fmt.Fprintf(stderr, "keyledger backup: --signing-key: %v\n", err)
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
	// Read-only: a backup changes nothing in the deployment it reads.
	var cps backup.CheckpointReader
	switch c, err := b.ReadCheckpoints(ctx, bf.stream); {
	case err == nil:
		cps = c
	case !errors.Is(err, checkpoint.ErrNone):
		fmt.Fprintf(stderr, "keyledger backup: %v\n", err)
		return 1
	}
	// A running embedded server (--nats-url with its --data-dir) keeps its
	// per-material keys in the data directory, not on NATS.
	shredDir := ""
	if bf.natsURL != "" && flagSet(fs, "data-dir") {
		shredDir = filepath.Join(bf.dataDir, "shred")
	}
	mats, err := b.ReadMaterials(ctx, shredDir)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger backup: %v\n", err)
		if bf.natsURL != "" && shredDir == "" {
			fmt.Fprintln(stderr, "keyledger backup: backing up a running embedded server? give its --data-dir too: its per-material keys are in <data-dir>/shred")
		}
		return 1
	}
	defer mats.Close()
	// After removed segments the state starts from a stored snapshot.
	var snaps backup.SnapshotReader
	if l.FirstIndex() > 0 {
		s, err := b.ReadSnapshots(ctx, bf.stream)
		if err != nil {
			fmt.Fprintf(stderr, "keyledger backup: the ledger starts after removed segments and its snapshots cannot be read: %v\n", err)
			return 1
		}
		snaps = s
	}
	sum, err := backup.Write(ctx, backup.Source{Snapshots: snaps, FoldFrom: foldFromSnapshot,
		Stream: bf.stream, Ledger: l, Checkpoints: cps, Materials: mats, Fold: keystate.New(),
		Verifier: string(vkey), ManifestSigner: manifestSigner, Signer: signer, Origin: "keyledger-" + *region,
	}, *out)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger %v\n", err)
		return 1
	}
	signed := "the newest stored checkpoint"
	if sum.Signed {
		signed = "a checkpoint signed now"
	}
	fmt.Fprintf(stdout, "OK: backed up %d events and %d materials to %s, cut at %s (size %d); its last event #%d at %s\n",
		sum.Events, sum.Materials, *out, signed, sum.Checkpoint.Size, sum.Last.Index, sum.Last.Time.UTC().Format(time.RFC3339))
	if sum.BaseFirstIndex > 0 {
		fmt.Fprintf(stdout, "the ledger starts after removed (archived) segments at event %d: the backup holds its base and the snapshot of event %d the state starts from\n",
			sum.BaseFirstIndex, sum.SnapshotIndex)
	}
	if sum.Quarantined > 0 {
		fmt.Fprintf(stdout, "ALARM: %d quarantined ledger messages were left out (see `keyledger audit verify`)\n", sum.Quarantined)
	}
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

// flagSet reports whether the flag name was given on the command line (or
// through its environment variable).
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// foldFromSnapshot is the key state a snapshot's body (resume.Image)
// holds, to fold a backup's events after it.
func foldFromSnapshot(body []byte) (backup.Fold, error) {
	im, err := resume.Decode(body)
	if err != nil {
		return nil, err
	}
	return keystate.Restore(im.Keys), nil
}

// rebaseSnapshot restates a snapshot's body for a restored stream: the
// same state, its head at the restored stream sequence seq, and no
// quarantined messages (those were the original stream's).
func rebaseSnapshot(body []byte, seq uint64, chains map[string]chain.ChainHead) ([]byte, error) {
	im, err := resume.Decode(body)
	if err != nil {
		return nil, err
	}
	im.Head.Seq, im.Quarantined, im.QuarantinedChains = seq, nil, nil
	if im.Chains != nil {
		im.Chains = chains
	}
	return im.Encode()
}
