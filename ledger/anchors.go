package ledger

import (
	"sort"
	"sync"
)

// Position anchors. An event's position (its place in stream order on
// every chain, the Merkle leaf index) is not in its bytes: a writer cannot
// know it without contending. Only a fold knows it, so the ledger's own
// fold leaves anchors, (stream sequence, position of the message's first
// event), for readers that look events up by position (EventsFrom: audit
// listings and subscriptions resuming, Merkle tiles rebuilt from their
// leaves). A reader starts at the nearest anchor at or before what it
// wants and counts forward.
//
// Memory stays small whatever the history's length: an anchor every
// fineEvery events for the newest fineKeep anchors (a reader near the head
// skips at most fineEvery events), one every coarseEvery events before
// them (16 bytes per 65,536 events: 240 KiB for a billion). A fold that
// started from a snapshot has no anchor before it: readers then count from
// where the live ledger starts.

const (
	fineEvery   = 256
	fineKeep    = 4096
	coarseEvery = 1 << 16
)

// anchor says that the message at stream sequence seq holds the event at
// position pos first.
type anchor struct{ seq, pos uint64 }

// anchors is the fold's anchors, in order.
type anchors struct {
	mu     sync.Mutex
	coarse []anchor
	fine   []anchor
	next   uint64 // the position from which the next anchor is due
}

// note records a message at seq whose n events start at position pos.
func (a *anchors) note(seq, pos uint64, n int) {
	end := pos + uint64(n) // the next message's first position
	a.mu.Lock()
	defer a.mu.Unlock()
	if n == 0 || end <= a.next {
		return
	}
	if l := len(a.fine); l > 0 && a.fine[l-1].seq >= seq {
		return
	}
	x := anchor{seq, pos}
	a.fine = append(a.fine, x)
	if l := len(a.coarse); l == 0 || a.coarse[l-1].pos/coarseEvery < pos/coarseEvery {
		a.coarse = append(a.coarse, x)
	}
	if len(a.fine) > 2*fineKeep {
		a.fine = append(a.fine[:0], a.fine[len(a.fine)-fineKeep:]...)
	}
	a.next = (pos/fineEvery + 1) * fineEvery
}

// reset forgets every anchor (a fold that starts again).
func (a *anchors) reset() {
	a.mu.Lock()
	a.coarse, a.fine, a.next = nil, nil, 0
	a.mu.Unlock()
}

// last is the last anchor for which ok holds, if any; ok must hold for a
// prefix of the anchors (it compares sequences or positions).
func (a *anchors) last(ok func(anchor) bool) (anchor, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if i := sort.Search(len(a.fine), func(i int) bool { return !ok(a.fine[i]) }); i > 0 {
		return a.fine[i-1], true
	}
	if i := sort.Search(len(a.coarse), func(i int) bool { return !ok(a.coarse[i]) }); i > 0 {
		return a.coarse[i-1], true
	}
	return anchor{}, false
}

// anchorAtOrBefore is the last anchor for which ok holds, or where the live
// ledger starts.
func (l *Ledger) anchorAtOrBefore(ok func(anchor) bool) anchor {
	if a, found := l.anchors.last(ok); found {
		return a
	}
	return anchor{seq: l.base.Seq + 1, pos: l.base.FirstIndex}
}
