package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/keyledger/keyledger/ledger/offline"
	"github.com/keyledger/keyledger/ledger/retention"
)

// auditArchive writes the ledger's whole messages before --before as a
// self-verifying archive (retention.Archive), verified as written.
func auditArchive(args []string, stdout, stderr io.Writer) int {
	fs, bf := ledgerFlagSet("audit archive", stderr)
	beforeFlag := fs.String("before", "", "archive the messages whose events are all before this time (RFC 3339 or YYYY-MM-DD)")
	out := fs.String("out", "", "the archive directory to create (must not exist)")
	pubkey := fs.String("pubkey", "", "the checkpoint verifier key file (default <data-dir>/checkpoint.key.pub)")
	whole := fs.Bool("whole-segments", false, "end the archive with the last closed segment whose events are all before --before (what audit prune can remove)")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	before, err := parseTimeFlag(*beforeFlag)
	if err != nil || before.IsZero() || *out == "" {
		fmt.Fprintf(stderr, "keyledger audit archive: --before T and --out DIR are required (%v)\n", err)
		return 2
	}
	if *pubkey == "" {
		*pubkey = bf.checkpointVerifierFile()
	}
	vkeyRaw, err := os.ReadFile(*pubkey)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: --pubkey: %v\n", err)
		return 2
	}
	l, b, done, ok := openLedgerForAudit(bf, stderr)
	if !ok {
		return 1
	}
	defer done()
	ctx := context.Background()
	signed, err := latestCheckpoint(ctx, b, bf.stream)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: a signed checkpoint is needed to archive: %v\n", err)
		return 1
	}
	lastSeq, _ := l.LastStreamSeq(ctx)
	meter := newMeter("audit archive", lastSeq, stderr)
	res, err := retention.Archive(ctx, retention.ArchiveRequest{Ledger: l, Stream: bf.stream,
		Checkpoint: signed, Verifier: strings.TrimSpace(string(vkeyRaw)),
		Before: before, WholeSegments: *whole, Dir: *out, Progress: meter.Add})
	meter.Done()
	var badSig *offline.SignatureError
	var nothing *retention.NothingError
	var coverage *retention.CoverageError
	var mismatch *retention.MismatchError
	var unverified *retention.UnverifiedError
	switch {
	case errors.As(err, &badSig):
		fmt.Fprintf(stderr, "keyledger: the newest checkpoint does not verify with %s: %v\n", *pubkey, badSig.Err)
		return 1
	case errors.As(err, &nothing) && nothing.WholeSegments:
		fmt.Fprintf(stdout, "nothing to archive: no closed segment of the live ledger ends before %s\n", before.Format(time.RFC3339))
		return 1
	case errors.As(err, &nothing):
		fmt.Fprintf(stdout, "nothing to archive: no whole message of the ledger is before %s\n", before.Format(time.RFC3339))
		return 1
	case errors.As(err, &coverage):
		fmt.Fprintf(stderr, "keyledger: the newest signed checkpoint (size %d) must cover the archive (%d events) and the ledger must extend it (%d events); checkpoint first\n",
			coverage.Checkpoint, coverage.Archive, coverage.Ledger)
		return 1
	case errors.As(err, &mismatch):
		fmt.Fprintf(stdout, "FAILED: the ledger does not match its newest signed checkpoint (size %d); run audit verify\n", mismatch.Size)
		return 1
	case errors.As(err, &unverified):
		fmt.Fprintf(stdout, "FAILED: the archive written to %s does not verify: %v\n", unverified.Dir, unverified.Err)
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	a := res.Archive
	fmt.Fprintf(stdout, "OK: archived events %d–%d (%s … %s) to %s; signed checkpoint of size %d, consistency proof from %d\n",
		a.Manifest.Base.FirstIndex, a.Manifest.Next.FirstIndex-1, res.First.Format(time.RFC3339), res.Last.Format(time.RFC3339),
		*out, a.Checkpoint.Size, a.Manifest.Next.FirstIndex)
	return 0
}
