package auditapi

import (
	"sync"
	"sync/atomic"

	"github.com/keyledger/keyledger/ledger/event"
)

// Hub fans committed events out to live subscribers (SSE streams). A
// subscriber that cannot keep up is marked lagging and its events dropped:
// it catches up from the ledger itself, so a slow or vanished subscriber
// never slows anyone else. Safe for concurrent use.
type Hub struct {
	mu      sync.RWMutex
	subs    map[*Sub]struct{}
	dropped atomic.Uint64 // events not handed to a lagging subscriber
}

// Subscribers is the number of live subscribers.
func (h *Hub) Subscribers() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.subs)
}

// Dropped is the number of events not handed to a subscriber that could not
// keep up (it catches up from the ledger).
func (h *Hub) Dropped() uint64 { return h.dropped.Load() }

// Sub is one live subscriber.
type Sub struct {
	C       chan event.Record
	match   func(event.Record) bool
	lagging atomic.Bool
}

// Lagging reports (and clears) whether events were dropped for s.
func (s *Sub) Lagging() bool { return s.lagging.Swap(false) }

// Join registers a subscriber for the records match accepts.
func (h *Hub) Join(match func(event.Record) bool) *Sub {
	s := &Sub{C: make(chan event.Record, 4096), match: match}
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[*Sub]struct{}{}
	}
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

// Leave unregisters a subscriber.
func (h *Hub) Leave(s *Sub) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

// Broadcast hands committed records to every matching subscriber without
// blocking.
func (h *Hub) Broadcast(recs []event.Record) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.subs {
		for _, r := range recs {
			if !s.match(r) {
				continue
			}
			select {
			case s.C <- r:
			default:
				s.lagging.Store(true)
				h.dropped.Add(1)
			}
		}
	}
}

// Lag marks every subscriber lagging (events were lost before the hub).
func (h *Hub) Lag() {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.subs {
		s.lagging.Store(true)
	}
}
