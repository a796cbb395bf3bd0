package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/backup"
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
	rootKeyFile := fs.String("root-key-file", "", "optional: check that every material opens under this (escrowed) root key")
	writerKeyFile := fs.String("writer-key", "", "the deployment's writer key, from escrow: the restored ledger is signed with it\n(required once the ledger has registered a writer; copied to <data-dir>/writer.key)")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	defer profileHeapPeaks()()
	if *from == "" || *pubkey == "" {
		fmt.Fprintln(stderr, "keyledger restore: --from and --pubkey are required")
		return 2
	}
	vkey, err := os.ReadFile(*pubkey)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger restore: --pubkey: %v\n", err)
		return 2
	}
	opt := backup.Options{Verifier: string(vkey), Fold: func() backup.Fold { return keystate.New() }}
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
	if err != nil {
		fmt.Fprintf(stdout, "REFUSED: %s\n", strings.TrimPrefix(err.Error(), backup.ErrRefused.Error()+": "))
		return 1
	}
	fmt.Fprintf(stdout, "verified %s: %d events, checkpoint %q of size %d signed by %s, %d materials match the ledger's commitments\n",
		*from, bk.Manifest.Events, bk.Checkpoint.Origin, bk.Checkpoint.Size, keyName(string(vkey)), bk.Manifest.Materials)
	if j := bk.Journal; j != nil {
		fmt.Fprintf(stdout, "deletion journal: %d events, all signed by registered writers and covered by its checkpoint of size %d; its last event #%d at %s (%s)\n",
			j.Events, j.Checkpoint.Size, j.Last.Index, j.Last.Time.UTC().Format(time.RFC3339), j.Last.Hash)
		fmt.Fprintf(stdout, "deletion journal: %d events after the backup; %d deletions recorded again, %d materials deleted since are not restored\n",
			j.After, j.Deletions, len(bk.Deleted))
		if skipped := j.After - int64(j.Deletions); skipped > 0 {
			fmt.Fprintf(stdout, "deletion journal: %d other events after the backup are not restored (%s)\n", skipped, opCounts(j.Skipped))
		}
	}

	req := backup.RestoreRequest{Stream: bf.stream, Writer: wk, Fold: keystate.New(),
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
	fmt.Fprintf(stdout, "OK: restored and re-verified %d events (head %s), %d materials (sealed under new per-material keys); %d deletions recorded again\n",
		res.Events, res.Head.Hash, res.Materials, res.Deletions)
	fmt.Fprintln(stdout, "start it with the escrowed root key, checkpoint key and principals (--root-key-file, --checkpoint-key, --principals)")
	return 0
}

// opCounts lists operations with their counts, most frequent first.
func opCounts(m map[string]int) string {
	ops := slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		if m[a] != m[b] {
			return m[b] - m[a]
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, op := range ops {
		parts = append(parts, fmt.Sprintf("%s %d", op, m[op]))
	}
	return strings.Join(parts, ", ")
}
