package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/backup"
	"github.com/keyledger/keyledger/ledger/witness"
	"github.com/keyledger/keyledger/ledger/writer"
	"github.com/keyledger/keyledger/projections/keystate"
)

// restoreCmd verifies a backup (backup.Open) and rebuilds a deployment from
// it (Backup.RestoreInto): a new data directory, or an empty NATS
// deployment.
func restoreCmd(args []string, stdout, stderr io.Writer) int {
	fs, bf := ledgerFlagSet("restore", stderr)
	from := fs.String("from", "", "the backup directory (required)")
	pubkey := fs.String("pubkey", "", "the checkpoint verifier key, from escrow (required): the backup's own copy could be forged with it")
	deletions := fs.String("deletions-from", "", "a ledger that survived, as an export directory (`audit export --out DIR`, or a newer backup's ledger/):\nmaterial it records deleted after the backup is not restored; it must verify (writer signatures, signed checkpoint)")
	backupPubkey := fs.String("backup-pubkey", "", "the backup signing key's verifier key (<signing key>.pub), from escrow (required):\nthe manifest must be signed with it")
	allowUnsigned := fs.Bool("allow-unsigned-manifest", false, "restore a backup written before manifests and writer signatures were signed (keyledger-backup/1)")
	notBefore := fs.String("not-before", "", "refuse a backup whose cut (its last event) is older than this time (RFC 3339 or a date)")
	witnessState := fs.String("witness-state", "", "refuse a backup (or deletion journal) older than the checkpoint this `audit witness --state` file holds")
	allowRollback := fs.Bool("allow-rollback", false, "restore even if the cut is older than --not-before or --witness-state, or with neither:\nstate after the cut (revoked grants, disabled keys) comes back")
	rootKeyFile := fs.String("root-key-file", "", "optional: check that every material opens under this (escrowed) root key")
	writerKeyFile := fs.String("writer-key", "", "the deployment's writer key, from escrow: the restored ledger is signed with it\n(required once the ledger has registered a writer; copied to <data-dir>/writer.key)")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	defer profileHeapPeaks()()
	if *from == "" || *pubkey == "" || (*backupPubkey == "" && !*allowUnsigned) {
		fmt.Fprintln(stderr, "keyledger restore: --from, --pubkey and --backup-pubkey are required")
		return 2
	}
	vkey, err := os.ReadFile(*pubkey)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger restore: --pubkey: %v\n", err)
		return 2
	}
	opt := backup.Options{Verifier: string(vkey), Fold: func() backup.Fold { return keystate.New() }, FoldFrom: foldFromSnapshot,
		AllowUnsigned: *allowUnsigned, Fresh: backup.Freshness{AllowRollback: *allowRollback}}
	if *backupPubkey != "" {
		bkey, err := os.ReadFile(*backupPubkey)
		if err != nil {
			fmt.Fprintf(stderr, "keyledger restore: --backup-pubkey: %v\n", err)
			return 2
		}
		opt.BackupVerifier = string(bkey)
	}
	if opt.Fresh.NotBefore, err = parseTimeFlag(*notBefore); err != nil {
		fmt.Fprintf(stderr, "keyledger restore: --not-before: %v\n", err)
		return 2
	}
	if *witnessState != "" {
		seen, err := witness.Load(*witnessState, string(vkey))
		if err == nil && seen == nil {
			err = os.ErrNotExist
		}
		if err != nil {
			fmt.Fprintf(stderr, "keyledger restore: --witness-state: %v\n", err)
			return 2
		}
		opt.Fresh.Witness = &seen.Checkpoint
	}
	opt.JournalDir = *deletions
	if *rootKeyFile != "" {
		root, err := rootkey.Load(*rootKeyFile)
		if err != nil {
			fmt.Fprintf(stderr, "keyledger restore: --root-key-file: %v\n", err)
			return 2
		}
		opt.RootKey = root
	}
	var wk *writer.Key
	if *writerKeyFile != "" {
		if wk, err = writer.Load(*writerKeyFile); err != nil {
			fmt.Fprintf(stderr, "keyledger restore: --writer-key: %v\n", err)
			return 2
		}
	}
	bk, err := backup.Open(*from, opt)
	if bk != nil {
		printCut(stdout, *from, bk, string(vkey))
	}
	if err != nil {
		fmt.Fprintf(stdout, "REFUSED: %s\n", strings.TrimPrefix(err.Error(), backup.ErrRefused.Error()+": "))
		switch {
		case errors.Is(err, backup.ErrRollback):
			fmt.Fprintln(stdout, "restore an older backup only on purpose: --allow-rollback")
		case errors.Is(err, backup.ErrNoFreshness):
			fmt.Fprintln(stdout, "--not-before TIME (e.g. when the newest backup you expect was taken), --witness-state FILE, or --allow-rollback")
		}
		return 1
	}

	req := backup.RestoreRequest{Stream: bf.stream, Writer: wk, Fold: keystate.New(), Rebase: rebaseSnapshot,
		Open: func(dir string) (backup.Deployment, error) {
			at := *bf
			if dir != "" {
				at.dataDir = dir
			}
			b, err := at.open("", false, nil)
			if err != nil {
				return nil, err
			}
			return b, nil
		}}
	if bf.natsURL == "" {
		req.DataDir, req.WriterKeyFile = bf.dataDir, *writerKeyFile
	}
	res, err := bk.RestoreInto(context.Background(), req)
	switch {
	case errors.Is(err, backup.ErrDirNotEmpty):
		fmt.Fprintf(stderr, "keyledger restore: %s is not empty; restore into a new data directory\n", bf.dataDir)
		return 1
	case errors.Is(err, ledger.ErrImportWriter):
		fmt.Fprintf(stderr, "keyledger restore: %v: pass the deployment's escrowed writer key with --writer-key\n", err)
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "keyledger restore: %v\n", err)
		return 1
	}
	if *allowRollback {
		fmt.Fprintln(stdout, "restored with --allow-rollback: what happened after the cut is undone; reset witnesses (audit witness --state) deliberately")
	}
	fmt.Fprintf(stdout, "OK: restored and re-verified %d events (head %s), %d materials (sealed under new per-material keys); %d deletions recorded again\n",
		res.Events, res.Head.Hash, res.Materials, res.Deletions)
	fmt.Fprintln(stdout, "start it with the escrowed root key, checkpoint key and principals (--root-key-file, --checkpoint-key, --principals)")
	return 0
}

// printCut describes a backup that verified (up to its freshness): its
// cut, who signed it, and the deletion journal.
func printCut(stdout io.Writer, from string, bk *backup.Backup, vkey string) {
	signedBy := "unsigned (" + backup.LegacyFormat + ")"
	if bk.SignedBy != "" {
		signedBy = "signed by " + bk.SignedBy
	}
	fmt.Fprintf(stdout, "verified %s: manifest %s, created %s; %d materials match the ledger's commitments\n",
		from, signedBy, bk.Manifest.Created.UTC().Format(time.RFC3339), bk.Manifest.Materials)
	fmt.Fprintf(stdout, "cut: %d events, checkpoint %q of size %d signed by %s; its last event #%d at %s (%s)\n",
		bk.Manifest.Events, bk.Checkpoint.Origin, bk.Checkpoint.Size, keyName(vkey), bk.Last.Index,
		bk.Last.Time.UTC().Format(time.RFC3339), bk.Last.Hash)
	if first, snap := bk.StartsAt(); first > 0 {
		fmt.Fprintf(stdout, "it starts after removed (archived) segments at event %d, the state from the snapshot of event %d; the restore keeps that base\n", first, snap)
	}
	if j := bk.Journal; j != nil {
		fmt.Fprintf(stdout, "deletion journal: %d events, all signed by registered writers and covered by its checkpoint of size %d; its last event #%d at %s (%s)\n",
			j.Events, j.Checkpoint.Size, j.Last.Index, j.Last.Time.UTC().Format(time.RFC3339), j.Last.Hash)
		fmt.Fprintf(stdout, "deletion journal: %d events after the backup; %d deletions recorded again, %d materials deleted since are not restored\n",
			j.After, j.Deletions, len(bk.Deleted))
		if skipped := j.After - int64(j.Deletions); skipped > 0 {
			fmt.Fprintf(stdout, "deletion journal: %d other events after the backup are not restored (%s)\n", skipped, backup.OpCounts(j.Skipped))
		}
	}
}
