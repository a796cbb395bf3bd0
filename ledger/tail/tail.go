// Package tail follows a ledger's events: history from a time or an index,
// then the live feed, each matching event's exact stored bytes once, in
// index order. It is what `keyledger audit tail` prints.
//
// History is read after folding the ledger, so it holds only what
// registered writers signed. Live events are subscribed to before the
// history is read and held until it is done, so no event falls between
// the two, and one seen in both is emitted once.
//
// The package reads only. Run calls Emit from one goroutine at a time.
package tail

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/feed"
)

// Request says which events to follow and where they go.
type Request struct {
	Ledger *ledger.Ledger // opened, not started: Run folds it first
	// Feed is the deployment's live feed: Run emits live events after the
	// history until ctx is done. Nil (a stopped deployment): Run emits the
	// history and returns.
	Feed *feed.Feed
	// Account, KeyID and Operation select events; empty matches all.
	Account, KeyID, Operation string
	// Since or From start with history: the events since a time, or from
	// an index on (From wins). Without either, history is the whole live
	// ledger without a Feed, and none with one.
	Since time.Time
	From  int64 // < 0: not set
	// Count stops Run after that many events; 0 runs until ctx is done.
	Count int
	// Emit gets each event's stored bytes (it must copy to keep them).
	Emit func(raw []byte)
}

func (req Request) match(e *event.Event) bool {
	return (req.KeyID == "" || e.KeyID == req.KeyID) && (req.Operation == "" || e.Operation == req.Operation) &&
		(req.Account == "" || e.Account == req.Account)
}

// errEnough stops a walk of the history once Count events were emitted.
var errEnough = errors.New("tail: enough")

// Run emits the events req selects: history, then (with a Feed) live
// events until ctx is done or Count is reached. It returns nil then, and
// an error if the ledger or the feed cannot be read.
func Run(ctx context.Context, req Request) error {
	_, err := req.Ledger.Replay(ctx, chain.Head{}, func(event.Record) error { return nil })
	switch {
	case err != nil:
	case req.Feed == nil:
		err = history(ctx, req)
	default:
		err = follow(ctx, req)
	}
	if ctx.Err() != nil {
		return nil // done: an interrupt is how a tail ends
	}
	return err
}

// history emits the matching events of the ledger from req.From or
// req.Since (default: the first).
func history(ctx context.Context, req Request) error {
	emitted := 0
	fn := func(r event.Record) error {
		if !req.match(r.Event) {
			return nil
		}
		req.Emit(r.Raw)
		if emitted++; req.Count > 0 && emitted >= req.Count {
			return errEnough
		}
		return nil
	}
	var err error
	if !req.Since.IsZero() && req.From < 0 {
		err = req.Ledger.EventsSince(ctx, req.Since, fn)
	} else {
		err = req.Ledger.EventsFrom(ctx, uint64(max(req.From, 0)), fn)
	}
	if errors.Is(err, errEnough) {
		return nil
	}
	return err
}

// live is one event from the feed, held while the history is read.
type live struct {
	index uint64
	raw   []byte
}

// follow subscribes to the feed, emits the history, then what the feed
// delivered meanwhile and from then on, each index once and in order.
func follow(ctx context.Context, req Request) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	last, emitted := int64(-1), 0
	emitLocked := func(idx uint64, raw []byte) {
		if int64(idx) <= last || (req.Count > 0 && emitted >= req.Count) {
			return
		}
		last = int64(idx)
		emitted++
		req.Emit(raw)
		if req.Count > 0 && emitted >= req.Count {
			cancel()
		}
	}
	emit := func(idx uint64, raw []byte) {
		mu.Lock()
		defer mu.Unlock()
		emitLocked(idx, raw)
	}
	// Live first, so nothing falls between history and live.
	var held []live
	historyDone := false
	sub, err := req.Feed.Subscribe(req.Feed.Filter(req.Account, req.KeyID, req.Operation), func(idx uint64, raw []byte) {
		mu.Lock()
		defer mu.Unlock()
		if !historyDone {
			held = append(held, live{idx, append([]byte(nil), raw...)})
			return
		}
		emitLocked(idx, raw)
	})
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	fn := func(r event.Record) error {
		if req.match(r.Event) {
			emit(r.Pos, r.Raw)
		}
		return ctx.Err()
	}
	switch {
	case req.From >= 0:
		err = req.Ledger.EventsFrom(ctx, uint64(req.From), fn)
	case !req.Since.IsZero():
		err = req.Ledger.EventsSince(ctx, req.Since, fn)
	}
	if err != nil && ctx.Err() == nil {
		return err
	}
	mu.Lock()
	for _, e := range held {
		emitLocked(e.index, e.raw)
	}
	historyDone, held = true, nil
	mu.Unlock()
	<-ctx.Done()
	return nil
}
