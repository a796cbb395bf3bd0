package ledger

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/keyledger/keyledger/ledger/event"
)

// Two instances appending at once: the loser's batch is refused by
// JetStream and the loser folds the winner's messages (recover). A batch of
// records that change no key state (APICall: reads, cryptographic
// operations, refusals) is then linked after them and published again, so
// a losing instance keeps answering under contention instead of being
// starved by a busy peer. A batch that changes key state was validated
// against the state before the winner's events, so it is refused
// (ErrConflict) and the caller retries against the new state.
//
// Relinking alone is not fair: the winner publishes again one round trip
// after its last acknowledgement, while the loser must first read and
// authenticate every message it missed, so a busy winner takes the next
// sequence every time and the loser's batch runs out of retries (about a
// second later) — the loser answered nothing. So the loser asks its peers
// to wait: on a refused append it sends "wait" on Subject+".contention"
// (core NATS, not stored) and "done" once its batch is settled. A writer
// that was asked holds its next batch until "done", at most maxYield
// (a crashed peer stalls it once, briefly); the events queued meanwhile
// join that batch, so the wait costs latency, not throughput. Only a
// fresh batch yields, never one being republished, so two losers cannot
// wait on each other. Only keyledger's NATS user may publish under
// keyledger.>, and a flood of notices at worst limits each writer to one
// batch per maxYield: it cannot stop the service.

// maxYield bounds how long a writer holds a batch for a peer that lost.
const maxYield = 500 * time.Millisecond

// relinkAfter returns b linked after the head the writer has folded, with
// its message ID: b itself if the head has not moved (only quarantined
// messages took its place), a new batch of the same events if it moved and
// none of them changes key state, ErrConflict otherwise.
func (l *Ledger) relinkAfter(b *batch, msgID string) (*batch, string, error) {
	head := l.fold.Head()
	first := b.recs[0].Event
	if first.Index == head.NextIndex() && first.Prev == head.Hash {
		return b, msgID, nil
	}
	for i, r := range b.recs {
		if _, ok := r.Event.Body.(*event.APICall); !ok || b.items[i].cond != nil {
			return b, msgID, ErrConflict
		}
	}
	nb := newBatch(head)
	for _, p := range b.items {
		if !nb.add(p, l.cfg.MaxBatchBytes) {
			return b, msgID, ErrConflict
		}
	}
	msgID = nb.seal()
	if err := l.mayWrite(nb.recs[0]); err != nil {
		return b, msgID, err
	}
	return nb, msgID, nil
}

// contentionSubject carries the wait/done notices between writers.
func (l *Ledger) contentionSubject() string { return l.cfg.Subject + ".contention" }

// listenToPeers subscribes to other writers' notices; without it this
// writer simply never yields.
func (l *Ledger) listenToPeers() {
	var b [8]byte
	_, _ = rand.Read(b[:])
	l.token = hex.EncodeToString(b[:])
	l.peerDone = make(chan struct{}, 1)
	sub, err := l.js.Conn().Subscribe(l.contentionSubject(), func(m *nats.Msg) {
		verb, token, _ := strings.Cut(string(m.Data), " ")
		if token == l.token {
			return
		}
		switch verb {
		case "wait":
			l.peerWait.Store(time.Now().Add(maxYield).UnixNano())
		case "done":
			l.peerWait.Store(0)
			select {
			case l.peerDone <- struct{}{}:
			default:
			}
		}
	})
	if err != nil {
		l.cfg.Logger.Warn("ledger: not listening to other writers; under contention this instance will not yield", "error", err)
		return
	}
	l.peerSub = sub
}

// notifyPeers sends a notice ("wait" or "done"); losing it only costs
// fairness.
func (l *Ledger) notifyPeers(verb string) {
	if l.peerSub != nil {
		_ = l.js.Conn().Publish(l.contentionSubject(), []byte(verb+" "+l.token))
	}
}

// yieldToPeers holds the writer while a peer that lost an append asks it
// to, until the peer is done or at most maxYield.
func (l *Ledger) yieldToPeers() {
	if l.peerSub == nil {
		return
	}
	limit := time.Now().Add(maxYield)
	for {
		until := time.Unix(0, l.peerWait.Load())
		if until.After(limit) {
			until = limit
		}
		d := time.Until(until)
		if d <= 0 {
			return
		}
		t := time.NewTimer(d)
		select {
		case <-l.peerDone:
		case <-t.C:
		}
		t.Stop()
	}
}
