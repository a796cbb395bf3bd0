package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/offline"
	"github.com/keyledger/keyledger/ledger/segment"
)

// auditArchive writes the ledger's whole messages before --before as a
// self-verifying archive (package segment), then verifies what it wrote.
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
	vkey := strings.TrimSpace(string(vkeyRaw))
	l, b, done, ok := openLedgerForAudit(bf, stderr)
	if !ok {
		return 1
	}
	defer done()
	ctx := context.Background()
	cps, err := b.ReadCheckpoints(ctx, bf.stream)
	var signed []byte
	if err == nil {
		signed, err = cps.Latest(ctx)
	}
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: a signed checkpoint is needed to archive: %v\n", err)
		return 1
	}
	cp, err := merkle.Open(signed, vkey)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: the newest checkpoint does not verify with %s: %v\n", *pubkey, err)
		return 1
	}

	// Walk the ledger as every reader does, from where the live ledger
	// starts; the archive ends before the first message holding an event
	// at or after --before, so it holds whole messages, or with
	// --whole-segments at the end of the last closed segment before that
	// (what audit prune can remove).
	segEnds := map[uint64]bool{}
	if *whole {
		segs, err := l.Segments(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "keyledger: %v\n", err)
			return 1
		}
		for _, s := range segs {
			if s.Sealed && s.Last >= s.First {
				segEnds[s.Last] = true
			}
		}
	}
	// What the archive holds at the last segment end reached (--whole-segments).
	type mark struct {
		events, sigs int
		end          chain.Head
		writers      map[string]string
		last         time.Time
		chains       map[string]chain.ChainHead
	}
	var atEnd mark
	f, err := l.Folder()
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	tree, err := l.MemTree()
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	var events, sigs bytes.Buffer
	var end chain.Head // the last archived event
	var endWriters map[string]string
	var endChains map[string]chain.ChainHead // every chain's head there
	var first, last time.Time
	cut := false
	lastSeq, _ := l.LastStreamSeq(ctx)
	meter := newMeter("audit archive", lastSeq, stderr)
	err = l.Messages(ctx, func(m chain.Message) error {
		recs, err := f.Fold(m)
		var q *chain.Quarantine
		if errors.As(err, &q) {
			return nil // never applied, not part of the chain: reported by audit verify
		}
		if err != nil {
			return err
		}
		meter.Add(m.Seq, uint64(len(recs)))
		if !cut {
			for _, r := range recs {
				if !r.Event.Time.Before(before) {
					cut = true
				}
			}
		}
		if !cut {
			head := f.Head()
			for i, r := range recs {
				if first.IsZero() && i == 0 {
					first = r.Event.Time
				}
				last = r.Event.Time
				events.Write(r.Raw)
				events.WriteByte('\n')
			}
			line, _ := json.Marshal(offline.Signature(m, recs, len(recs)))
			sigs.Write(append(line, '\n'))
			end, endWriters, endChains = head, f.Writers(), f.Chains()
			if segEnds[m.Seq] {
				atEnd = mark{events.Len(), sigs.Len(), end, endWriters, last, endChains}
			}
		}
		for _, r := range recs {
			if err := tree.Append(r.Raw); err != nil {
				return err
			}
		}
		return nil
	})
	meter.Done()
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	if *whole {
		events.Truncate(atEnd.events)
		sigs.Truncate(atEnd.sigs)
		end, endWriters, last, endChains = atEnd.end, atEnd.writers, atEnd.last, atEnd.chains
		if end.Empty() || end.Count <= l.FirstIndex() {
			fmt.Fprintf(stdout, "nothing to archive: no closed segment of the live ledger ends before %s\n", before.Format(time.RFC3339))
			return 1
		}
	}
	if end.Empty() {
		fmt.Fprintf(stdout, "nothing to archive: no whole message of the ledger is before %s\n", before.Format(time.RFC3339))
		return 1
	}
	n := int64(end.Count)
	if cp.Size < n || cp.Size > tree.Size() {
		fmt.Fprintf(stderr, "keyledger: the newest signed checkpoint (size %d) must cover the archive (%d events) and the ledger must extend it (%d events); checkpoint first\n",
			cp.Size, n, tree.Size())
		return 1
	}
	if root, err := tree.Root(cp.Size); err != nil || root != cp.Root {
		fmt.Fprintf(stdout, "FAILED: the ledger does not match its newest signed checkpoint (size %d); run audit verify\n", cp.Size)
		return 1
	}
	if len(endChains) == 1 && endChains[chain.Legacy].Count > 0 {
		endChains = nil // a ledger of the legacy chain alone: its base names no chains
	}
	at, err := segment.At(tree, end.Count, end.Hash, endWriters, end.Seq, endChains)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	proof, err := tree.Consistency(n, cp.Size)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	// The archive starts where the live ledger does: its manifest records
	// that base, which audit prune checks is still the ledger's.
	m := segment.Manifest{Ledger: bf.stream, Base: l.Base(), Next: at, Before: before.UTC(), FirstTime: first, LastTime: last}
	if err := segment.Write(*out, segment.Contents{Manifest: m, Events: events.Bytes(), Signatures: sigs.Bytes(), Checkpoint: signed, Proof: proof}); err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	a, err := segment.Open(*out, vkey)
	if err != nil {
		fmt.Fprintf(stdout, "FAILED: the archive written to %s does not verify: %v\n", *out, err)
		return 1
	}
	fmt.Fprintf(stdout, "OK: archived events %d–%d (%s … %s) to %s; signed checkpoint of size %d, consistency proof from %d\n",
		a.Manifest.Base.FirstIndex, a.Manifest.Next.FirstIndex-1, first.Format(time.RFC3339), last.Format(time.RFC3339),
		*out, a.Checkpoint.Size, a.Manifest.Next.FirstIndex)
	return 0
}
