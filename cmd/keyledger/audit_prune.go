package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/retention"
	"github.com/keyledger/keyledger/ledger/segment"
	"github.com/keyledger/keyledger/ledger/writer"
)

// auditPrune removes the whole segments an archive holds from the
// deployment (retention.Prune). It runs as a writer of the ledger (on a
// stopped --data-dir, or beside running instances with --nats-url and the
// deployment's writer key) rather than through the server's HTTP API:
// removal is a rare maintenance step, and doing it here adds no remotely
// reachable way to delete history.
func auditPrune(args []string, stdout, stderr io.Writer) int {
	fs, bf := ledgerFlagSet("audit prune", stderr)
	archiveDir := fs.String("archive", "", "the archive (audit archive --whole-segments) holding the segments to remove")
	keep := fs.Duration("retention", segment.DefaultRetention, "refuse to remove events younger than this")
	pubkey := fs.String("pubkey", "", "the checkpoint verifier key file (default <data-dir>/checkpoint.key.pub)")
	writerKey := fs.String("writer-key", "", "the deployment's writer key (default <data-dir>/writer.key)")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	if *archiveDir == "" {
		fmt.Fprintln(stderr, "keyledger audit prune: --archive DIR is required")
		return 2
	}
	if *pubkey == "" {
		*pubkey = bf.checkpointVerifierFile()
	}
	if *writerKey == "" {
		*writerKey = filepath.Join(bf.dataDir, "writer.key")
	}
	vkeyRaw, err := os.ReadFile(*pubkey)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: --pubkey: %v\n", err)
		return 2
	}
	wk, err := writer.Load(*writerKey)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: --writer-key: %v\n", err)
		return 2
	}
	a, err := segment.Open(*archiveDir, strings.TrimSpace(string(vkeyRaw)))
	if err != nil {
		fmt.Fprintf(stdout, "REFUSED: the archive %s does not verify: %v\n", *archiveDir, err)
		return 1
	}
	if bf.natsURL == "" {
		release, err := lockDataDir(bf.dataDir)
		if err != nil {
			fmt.Fprintf(stderr, "keyledger: %v\n", err)
			return 1
		}
		defer release()
	}
	b, err := bf.open("", false, nil)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	defer b.Close()
	ctx := context.Background()
	l, err := b.OpenLedger(ctx, ledger.Config{Stream: bf.stream, Writer: wk})
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	cps, err := b.OpenCheckpoints(ctx, bf.stream)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	res, err := retention.Prune(ctx, retention.PruneRequest{Ledger: l, Archive: a, Retention: *keep, Checkpoints: cps})
	if res.Recorded {
		fmt.Fprintf(stdout, "recorded: SegmentRemoved at event %d\n", res.Event)
	}
	var refused *retention.RefusedError
	var end *retention.SegmentEndError
	switch {
	case errors.As(err, &end):
		fmt.Fprintf(stdout, "REFUSED: the archive ends at stream sequence %d, which does not end a closed segment "+
			"(it is inside one, or in the segment being written): archive with --whole-segments (%v)\n", end.Seq, end.Err)
		return 1
	case errors.As(err, &refused):
		fmt.Fprintf(stdout, "REFUSED: %v\n", refused.Err)
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	next := a.Manifest.Next
	fmt.Fprintf(stdout, "OK: removed events %d–%d (stream sequences up to %d, streams %s); the live ledger starts at event %d\n",
		a.Manifest.Base.FirstIndex, next.FirstIndex-1, next.Seq, strings.Join(res.Streams, ", "), next.FirstIndex)
	return 0
}
