package segment

import (
	"errors"
	"fmt"
	"time"
)

// DefaultRetention is how long events stay online before they may be
// removed: compliance asks for at least twelve months.
const DefaultRetention = 365 * 24 * time.Hour

// Why a removal is refused.
var (
	ErrRetention  = errors.New("segment: the segment is younger than the retention")
	ErrNotArchive = errors.New("segment: the archive does not cover exactly what would be removed")
)

// Removal is a checked request to remove an archived segment.
type Removal struct {
	Archive Archive
	// Live is the live ledger's base now; HashAt returns the hash (hex)
	// of the live ledger's event at an index, as stored now, and the
	// stream sequence of the message holding it.
	Live      Base
	HashAt    func(index uint64) (hash string, seq uint64, err error)
	Now       time.Time
	Retention time.Duration
}

// Check refuses a removal unless the archive starts exactly at the live
// base, ends at an event the live ledger holds with the same hash, on a
// message boundary, and everything in it (its cut, and so every archived
// event) is older than the retention.
func (r Removal) Check() error {
	m := r.Archive.Manifest
	if r.Retention < 0 {
		return errors.New("segment: negative retention")
	}
	oldest := r.Now.Add(-r.Retention)
	if m.Before.After(oldest) || m.LastTime.After(oldest) {
		return fmt.Errorf("%w: the archive holds events up to %s, removable from %s (retention %s)",
			ErrRetention, m.LastTime.UTC().Format(time.RFC3339), m.LastTime.Add(r.Retention).UTC().Format(time.RFC3339), r.Retention)
	}
	if !m.Base.Equal(r.Live) {
		return fmt.Errorf("%w: it starts at event %d, the live ledger at event %d", ErrNotArchive, m.Base.FirstIndex, r.Live.FirstIndex)
	}
	n := m.Next.FirstIndex
	got, seq, err := r.HashAt(n - 1)
	if err != nil {
		return fmt.Errorf("%w: the live ledger's event %d: %v", ErrNotArchive, n-1, err)
	}
	if got != m.Next.Prev || seq != m.Next.Seq {
		return fmt.Errorf("%w: its last event (index %d) is not the live ledger's", ErrNotArchive, n-1)
	}
	// The archive holds whole messages (Open checked its signatures), so
	// the live ledger begins with the message after Next.Seq.
	return nil
}
