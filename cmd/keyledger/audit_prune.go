package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/offline"
	"github.com/keyledger/keyledger/ledger/segment"
	"github.com/keyledger/keyledger/ledger/writer"
)

// auditPrune removes the whole segments an archive holds from the
// deployment. It runs as a writer of the ledger (on a stopped --data-dir,
// or beside running instances with --nats-url and the deployment's writer
// key) rather than through the server's HTTP API: removal is a rare
// maintenance step, and doing it here adds no remotely reachable way to
// delete history. In order: the archive verifies and covers exactly the
// live ledger's oldest whole segments, older than the retention; a
// SegmentRemoved event is appended (acknowledged, fsynced); the new base
// is stored, signed; then the segment streams are deleted. Run again
// after a crash, it finishes what is left.
func auditPrune(args []string, stdout, stderr io.Writer) int {
	fs, bf := ledgerFlagSet("audit prune", stderr)
	archiveDir := fs.String("archive", "", "the archive (audit archive --whole-segments) holding the segments to remove")
	retention := fs.Duration("retention", segment.DefaultRetention, "refuse to remove events younger than this")
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
	next := a.Manifest.Next
	if !l.Base().Equal(next) { // not recorded yet (a run that stopped after recording it goes on to deleting)
		if code := recordRemoval(ctx, l, a, *retention, stdout, stderr); code != 0 {
			return code
		}
	}
	names, err := l.DeleteSegmentsThrough(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: the removal is recorded but the segments are not all deleted (run again): %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "OK: removed events %d–%d (stream sequences up to %d, streams %s); the live ledger starts at event %d\n",
		a.Manifest.Base.FirstIndex, next.FirstIndex-1, next.Seq, strings.Join(names, ", "), next.FirstIndex)
	return 0
}

// recordRemoval checks the removal, appends its SegmentRemoved event and
// stores the new base.
func recordRemoval(ctx context.Context, l *ledger.Ledger, a segment.Archive, retention time.Duration, stdout, stderr io.Writer) int {
	head, err := l.Replay(ctx, chain.Head{}, func(event.Record) error { return nil })
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	l.Start(head)
	defer l.Close()
	next := a.Manifest.Next
	rm := segment.Removal{Archive: a, Live: l.Base(), Now: time.Now(), Retention: retention,
		HashAt: func(index uint64) (string, uint64, error) {
			var hash string
			var seq uint64
			stop := errors.New("found")
			err := l.EventsFrom(ctx, index, func(r event.Record) error {
				if r.Pos == index {
					hash, seq = hex.EncodeToString(r.Hash[:]), r.Seq
				}
				return stop
			})
			if errors.Is(err, stop) && hash != "" {
				return hash, seq, nil
			}
			return "", 0, fmt.Errorf("no event %d (%v)", index, err)
		}}
	if err := rm.Check(); err != nil {
		fmt.Fprintf(stdout, "REFUSED: %v\n", err)
		return 1
	}
	if ok, err := l.SegmentEnds(ctx, next.Seq); err != nil || !ok {
		fmt.Fprintf(stdout, "REFUSED: the archive ends at stream sequence %d, which does not end a closed segment "+
			"(it is inside one, or in the segment being written): archive with --whole-segments (%v)\n", next.Seq, err)
		return 1
	}
	tree, err := tiledFrontier(l, a)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	cp := a.Checkpoint
	rec, err := l.Append(ctx, &event.Event{Time: time.Now().UTC(), Operation: "RemoveSegment",
		Body: &event.SegmentRemoved{FirstIndex: a.Manifest.Base.FirstIndex, NextIndex: next.FirstIndex, LastHash: next.Prev,
			Through: next.Seq, CheckpointSize: uint64(cp.Size), CheckpointRoot: cp.Root.String(),
			EventsSHA256: a.Manifest.EventsSHA256, RetentionDays: uint64(retention / (24 * time.Hour))}})
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: recording the removal: %v\n", err)
		return 1
	}
	if err := l.StoreBase(ctx, next, tree, rec); err != nil {
		fmt.Fprintf(stderr, "keyledger: the removal is recorded (event %d) but the base is not stored (run again): %v\n", rec.Pos, err)
		return 1
	}
	fmt.Fprintf(stdout, "recorded: SegmentRemoved at event %d\n", rec.Pos)
	return 0
}

// tiledFrontier continues the ledger's tiled Merkle tree from its base
// through the archived events: the frontier the live tree has at the new
// base, checked against the archive's own tree.
func tiledFrontier(l *ledger.Ledger, a segment.Archive) (merkle.Frontier, error) {
	t, err := l.TiledTree(merkle.NewMemoryStore(), 1)
	if err != nil {
		return merkle.Frontier{}, err
	}
	events, err := os.ReadFile(filepath.Join(a.Dir, offline.EventsFile))
	if err != nil {
		return merkle.Frontier{}, err
	}
	for _, raw := range bytes.Split(bytes.TrimSuffix(events, []byte("\n")), []byte("\n")) {
		if err := t.Append(raw); err != nil {
			return merkle.Frontier{}, err
		}
	}
	n := int64(a.Manifest.Next.FirstIndex)
	want, err := a.Span.Tree.Root(n)
	if err != nil {
		return merkle.Frontier{}, err
	}
	f := t.Frontier()
	if f.Size != n {
		return merkle.Frontier{}, fmt.Errorf("the archive's events end at %d, not at its next base %d", f.Size, n)
	}
	// From the first event the tree holds every hash (its tiles pending in
	// memory): its root must be the archive's. Continued from a base it
	// lacks the tiles before it; start-up checks the frontier against the
	// base's root with the deployment's tiles (Ledger.CheckBaseTree).
	if l.FirstIndex() == 0 {
		if got, err := t.Root(n); err != nil || got != want {
			return merkle.Frontier{}, fmt.Errorf("the tiled tree over the archive does not have the archive's root at %d (%v)", n, err)
		}
	}
	return f, nil
}
