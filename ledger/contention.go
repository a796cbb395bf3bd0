package ledger

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/keyledger/keyledger/ledger/chain"
)

// Fair turns on busy control chains. An instance that changes a hot key
// back to back wins every race against another instance's change of it:
// its own change is folded the moment it is acknowledged, while the loser
// must first fold the winner's before it can validate again, and by then
// the winner's next change is in flight. Measured with 8 clients on two
// gateways changing two keys (TestGatewaysWriteTogether): changes lost
// 20–30 races in a row, and 2–6 of 1,100–2,700 requests per run were
// answered ThrottlingException; with the notices, none in five runs (a
// pause of 2 ms still let one through).
//
// So a loser says so: a change that loses publishes a contention notice
// (core NATS, <Subject>.contended: the chains it lost on and its
// instance), and every other instance holds its next change for
// contentionPause (ContentionHold: the caller waits before it takes its
// change lock, so requests that only read never wait with it), long
// enough for the loser to fold and try again. The notice costs nothing
// without contention, a lost notice only loses the turn, and nothing waits
// longer than the pause per attempt: a notice is a courtesy, never a lock.
// A forged flood of notices costs each change at most the pause per
// attempt, and nothing else (TestForgedContentionNoticesStallTheDataPlane).

// contentionPause is how long a change on a chain waits after another
// instance lost a race on it: a few of the loser's round trips to the
// server (fold the winner, publish again).
const contentionPause = 5 * time.Millisecond

// contention holds, per control chain, until when this instance's changes
// on it wait.
type contention struct {
	mu    sync.Mutex
	until [chain.Partitions]time.Time
	sub   *nats.Subscription
	nonce string // tells this Ledger from another of the same writer
}

func (l *Ledger) contendedSubject() string { return l.cfg.Subject + ".contended" }

// instanceTag names this instance in its notices, to ignore its own.
func (l *Ledger) instanceTag() string { return l.dataChain() + "@" + l.contend.nonce }

// listenForContention follows the other instances' notices.
func (l *Ledger) listenForContention() {
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	l.contend.nonce = hex.EncodeToString(nonce[:])
	me := l.instanceTag()
	sub, err := l.js.Conn().Subscribe(l.contendedSubject(), func(m *nats.Msg) {
		who, parts, ok := strings.Cut(string(m.Data), " ")
		if !ok || who == me {
			return
		}
		until := time.Now().Add(contentionPause)
		l.contend.mu.Lock()
		for _, f := range strings.Split(parts, ",") {
			if p, err := strconv.Atoi(f); err == nil && p >= 0 && p < chain.Partitions {
				l.contend.until[p] = until
			}
		}
		l.contend.mu.Unlock()
	})
	if err != nil {
		l.cfg.Logger.Warn("ledger: not listening for other instances' lost changes: a busy instance may win every race", "error", err)
		return
	}
	l.contend.sub = sub
}

// lostOn tells the other instances that a change of this one lost on the
// chains parts.
func (l *Ledger) lostOn(parts []int) {
	b := []byte(l.instanceTag() + " ")
	for i, p := range parts {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(p), 10)
	}
	_ = l.js.Conn().Publish(l.contendedSubject(), b)
}

// ContentionHold is how long this instance's next change should wait
// because another instance lost a race on a busy chain (0: not at all).
// The caller waits before it takes whatever lock its changes hold, so
// that nothing else waits with it; the chains the change will touch are
// not known yet, so a hold on any chain counts.
func (l *Ledger) ContentionHold() time.Duration {
	l.contend.mu.Lock()
	var until time.Time
	for _, u := range l.contend.until {
		if u.After(until) {
			until = u
		}
	}
	l.contend.mu.Unlock()
	return max(time.Until(until), 0)
}
