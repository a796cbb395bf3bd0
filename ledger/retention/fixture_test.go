package retention

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/internal/ledgertest"
	"github.com/keyledger/keyledger/ledger/segment"
)

// t0 is the time of a fixture's first event; each next one is an hour on.
var t0 = ledgertest.T0

// fixture is a signed ledger whose writer rolls to a new segment every
// two messages.
type fixture struct {
	*ledgertest.Ledger
	t *testing.T
}

// newFixture writes events single-event messages: the first registers the
// writer, the rest are an hour apart from t0 on.
func newFixture(t *testing.T, events int) fixture {
	return fixture{ledgertest.New(t, ledger.Config{SegmentMessages: 2}, events), t}
}

// before is the time of the event at index i: a cut that archives the
// events before it.
func (fixture) before(i int) time.Time { return ledgertest.At(i) }

// archive archives the events before the cut, with a checkpoint of every
// event so far.
func (f fixture) archive(l *ledger.Ledger, before time.Time, whole bool) segment.Archive {
	f.t.Helper()
	res, err := Archive(context.Background(), ArchiveRequest{Ledger: l, Stream: ledger.DefaultStream,
		Checkpoint: f.Checkpoint(len(f.Recs), nil), Verifier: f.Vkey,
		Before: before, WholeSegments: whole, Dir: filepath.Join(f.t.TempDir(), "archive")})
	if err != nil {
		f.t.Fatal(err)
	}
	return res.Archive
}

// sealedEnds are the last stream sequences of the sealed segments.
func sealedEnds(t *testing.T, l *ledger.Ledger) []uint64 {
	t.Helper()
	segs, err := l.Segments(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ends []uint64
	for _, s := range segs {
		if s.Sealed {
			ends = append(ends, s.Last)
		}
	}
	return ends
}
