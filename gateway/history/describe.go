package history

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keyledger/keyledger/gateway/node"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/projections/timetravel"
)

// RemovedError means a key cannot be described at a time from the live
// ledger: no snapshot at or before the time holds its state, and the
// events before the live ledger (which start at FirstIndex) were removed.
// The archives answer.
type RemovedError struct {
	AsOf       time.Time
	FirstIndex uint64
}

func (e *RemovedError) Error() string {
	return fmt.Sprintf("history: no snapshot at or before %s, and the live ledger starts at event %d after removed segments",
		e.AsOf.Format(time.RFC3339), e.FirstIndex)
}

// Describe answers what key keyID was at asOf, and who could use it: from
// the newest trusted snapshot at or before asOf to the first event after
// it, the answer of a fold from the first event. It refuses a ledger whose
// base no checkpoint vouches for (CheckBase), and one that starts after
// removed segments with no snapshot to start from (*RemovedError).
func Describe(ctx context.Context, s *Source, keyID, region string, asOf time.Time) (timetravel.Answer, error) {
	if err := s.CheckBase(ctx); err != nil {
		return timetravel.Answer{}, err
	}
	l := s.Ledger
	f := timetravel.NewFolder(asOf)
	var from *ledger.Resume
	if im := s.image(ctx, asOf); im != nil {
		if g, err := timetravel.Resume(asOf, im); err == nil {
			r, _ := node.ResumeAt(im) // writers checked with the snapshot
			f, from = g, &r
		}
	}
	var err error
	switch first := l.FirstIndex(); {
	case from != nil:
		_, err = l.ReplayFrom(ctx, *from, f.Fold)
	case first > 0:
		// A fold from where the live ledger starts would miss the key's
		// history.
		return timetravel.Answer{}, &RemovedError{AsOf: asOf, FirstIndex: first}
	default:
		_, err = l.Replay(ctx, chain.Head{}, f.Fold)
	}
	if err != nil && !errors.Is(err, timetravel.ErrPassed) {
		return timetravel.Answer{}, err
	}
	return f.Describe(keyID, region), nil
}
