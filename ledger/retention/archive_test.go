package retention

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/internal/ledgertest"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/offline"
	"github.com/keyledger/keyledger/ledger/segment"
)

// An archive holds exactly the whole messages before its cut (or, with
// whole segments, up to the last sealed segment end before it), byte for
// byte, and verifies on its own with the checkpoint verifier key.
func TestArchiveHoldsTheEventsBeforeItsCut(t *testing.T) {
	f := newFixture(t, 9)
	const cut = 5
	for _, whole := range []bool{false, true} {
		a := f.archive(f.L, f.before(cut), whole)
		n := uint64(cut)
		if whole {
			// The last sealed segment end at or before the last archived
			// message.
			var end uint64
			for _, e := range sealedEnds(t, f.L) {
				if e <= f.Recs[cut-1].Seq {
					end = max(end, e)
				}
			}
			if end == 0 {
				t.Fatal("the fixture has no sealed segment before the cut")
			}
			n = 0
			for _, r := range f.Recs {
				if r.Seq <= end {
					n++
				}
			}
			if a.Manifest.Next.Seq != end {
				t.Errorf("whole segments: the archive ends at stream sequence %d, want the segment end %d", a.Manifest.Next.Seq, end)
			}
		}
		if a.Manifest.Next.FirstIndex != n || !a.Manifest.Base.Empty() {
			t.Fatalf("whole=%v: the archive holds events %d–%d, want 0–%d", whole, a.Manifest.Base.FirstIndex, a.Manifest.Next.FirstIndex-1, n-1)
		}
		var want []byte
		for _, r := range f.Recs[:n] {
			want = append(append(want, r.Raw...), '\n')
		}
		got, err := os.ReadFile(filepath.Join(a.Dir, offline.EventsFile))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("whole=%v: the archived events are not the stored bytes of events 0–%d (%v)", whole, n-1, err)
		}
		if !a.Manifest.LastTime.Equal(f.Recs[n-1].Event.Time) || !a.Manifest.FirstTime.Equal(t0) {
			t.Errorf("whole=%v: times %s … %s", whole, a.Manifest.FirstTime, a.Manifest.LastTime)
		}
		if _, err := segment.Open(a.Dir, f.Vkey); err != nil {
			t.Fatalf("whole=%v: the archive does not verify: %v", whole, err)
		}
	}
}

// Archive refuses, writing nothing, what it cannot prove: nothing before
// the cut, a checkpoint another key signed, one that does not cover the
// archive, one whose root the ledger does not have.
func TestArchiveRefuses(t *testing.T) {
	f := newFixture(t, 9)
	all := len(f.Recs)
	other := ledgertest.OtherSigner(t)
	forgedRoot, err := merkle.Sign(merkle.Checkpoint{Origin: "ledgertest", Size: int64(all)}, f.Signer)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		checkpoint []byte
		cut        int // archive the events before this one's time
		whole      bool
		want       any // an error type to match with errors.As
	}{
		{"nothing before the cut", f.Checkpoint(all, nil), 0, false, new(*NothingError)},
		{"no sealed segment before the cut", f.Checkpoint(all, nil), 1, true, new(*NothingError)},
		{"checkpoint signed by another key", f.Checkpoint(all, other), 5, false, new(*offline.SignatureError)},
		{"checkpoint older than the archive", f.Checkpoint(3, nil), 5, false, new(*CoverageError)},
		{"checkpoint the ledger does not match", forgedRoot, 5, false, new(*MismatchError)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "archive")
			_, err := Archive(context.Background(), ArchiveRequest{Ledger: f.L, Stream: ledger.DefaultStream,
				Checkpoint: tc.checkpoint, Verifier: f.Vkey, Before: f.before(tc.cut), WholeSegments: tc.whole, Dir: dir})
			if !errors.As(err, tc.want) {
				t.Fatalf("Archive = %v, want a %T", err, tc.want)
			}
			if _, serr := os.Stat(dir); !errors.Is(serr, os.ErrNotExist) {
				t.Fatalf("a refused archive left %s behind (%v)", dir, serr)
			}
			if errors.Is(err, ErrNothing) != (tc.name == "nothing before the cut" || tc.name == "no sealed segment before the cut") {
				t.Errorf("errors.Is(%v, ErrNothing) is wrong", err)
			}
		})
	}
	// An existing directory is never written into.
	dir := t.TempDir()
	if _, err := Archive(context.Background(), ArchiveRequest{Ledger: f.L, Checkpoint: f.Checkpoint(all, nil), Verifier: f.Vkey,
		Before: f.before(5), Dir: dir}); err == nil {
		t.Fatal("Archive wrote into an existing directory")
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Fatalf("Archive wrote %d files into an existing directory", len(entries))
	}
}
