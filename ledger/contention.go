package ledger

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
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
// instance, signed by its writer key), and every other instance holds its
// next change for as long as the loser asks, 5–50 ms (ContentionHold: the
// caller waits before it takes its change lock, so requests that only
// read never wait with it): long enough for the loser to fold and try
// again. The notice costs nothing without contention, a lost notice only
// loses the turn, and nothing waits longer than 50 ms per attempt: a
// notice is a courtesy, never a lock.
// Only a registered writer's signed, fresh notice holds anything: a
// forged flood costs nothing (TestForgedContentionNoticesStallTheDataPlane).

// How long a change waits after another instance lost a race: what the
// loser asks for (three of its publish round trips: fold the winner,
// validate, publish again), at least contentionPause and at most
// maxContentionPause. On a loaded machine a round trip is tens of
// milliseconds, and a fixed 5 ms let the winner win 32 races in a row.
const (
	contentionPause    = 5 * time.Millisecond
	maxContentionPause = 50 * time.Millisecond
)

// noticeMaxAge bounds how old a notice may be (by its sender's clock):
// a copy replayed later is ignored. Generous for clock skew between hosts:
// a replay within it costs what a real notice does.
const noticeMaxAge = 10 * time.Second

// noticeDomain begins what a notice's signature covers, so it never
// passes for a signature of anything else.
const noticeDomain = "keyledger contention notice v1\n"

// contention holds, per control chain, until when this instance's changes
// on it wait.
type contention struct {
	mu    sync.Mutex
	until [chain.Partitions]time.Time
	sub   *nats.Subscription
	nonce string // tells this Ledger from another of the same writer
}

func (l *Ledger) contendedSubject() string { return l.cfg.Subject + ".contended" }

// A notice is "<writer> <nonce> <unix ms> <chains> <hold µs> <signature>":
// the sending instance (its writer ID and a nonce of its process), when,
// the chains it lost on (comma-separated), how long it asks the others to
// hold, and its writer key's signature of the rest. Only a registered writer's notice holds anything, so a NATS
// client without a writer key cannot slow changes down.

// noticeBody is what a notice's signature covers.
func (l *Ledger) noticeBody(fields string) []byte {
	return []byte(noticeDomain + l.contendedSubject() + "\n" + fields)
}

// listenForContention follows the other instances' notices.
func (l *Ledger) listenForContention() {
	w := l.cfg.Writer
	if w == nil {
		return // a ledger without writer keys has one writer: nobody to yield to
	}
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	l.contend.nonce = hex.EncodeToString(nonce[:])
	sub, err := l.js.Conn().Subscribe(l.contendedSubject(), func(m *nats.Msg) {
		parts, hold, ok := l.checkNotice(string(m.Data), time.Now())
		if !ok {
			return
		}
		until := time.Now().Add(min(max(hold, contentionPause), maxContentionPause))
		l.contend.mu.Lock()
		for _, p := range parts {
			l.contend.until[p] = until
		}
		l.contend.mu.Unlock()
	})
	if err != nil {
		l.cfg.Logger.Warn("ledger: not listening for other instances' lost changes: a busy instance may win every race", "error", err)
		return
	}
	l.contend.sub = sub
}

// checkNotice returns the chains a notice names and the hold it asks for,
// if it is another instance's, fresh at now, and signed by its registered
// writer.
func (l *Ledger) checkNotice(text string, now time.Time) ([]int, time.Duration, bool) {
	i := strings.LastIndexByte(text, ' ')
	if i < 0 {
		return nil, 0, false
	}
	fields, sig64 := text[:i], text[i+1:]
	f := strings.Split(fields, " ")
	if len(f) != 5 || f[0] == l.cfg.Writer.ID() && f[1] == l.contend.nonce {
		return nil, 0, false
	}
	ms, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return nil, 0, false
	}
	if age := now.Sub(time.UnixMilli(ms)); age > noticeMaxAge || age < -noticeMaxAge {
		return nil, 0, false
	}
	holdMicros, err := strconv.ParseUint(f[4], 10, 32)
	if err != nil {
		return nil, 0, false
	}
	keys := l.keys.Load()
	if keys == nil {
		return nil, 0, false
	}
	pub, ok := (*keys)[f[0]]
	sig, err := base64.StdEncoding.DecodeString(sig64)
	if !ok || err != nil || len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, l.noticeBody(fields), sig) {
		return nil, 0, false
	}
	var parts []int
	for _, c := range strings.Split(f[3], ",") {
		p, err := strconv.Atoi(c)
		if err != nil || p < 0 || p >= chain.Partitions {
			return nil, 0, false
		}
		parts = append(parts, p)
	}
	return parts, time.Duration(holdMicros) * time.Microsecond, true
}

// lostOn tells the other instances that a change of this one lost on the
// chains parts.
func (l *Ledger) lostOn(parts []int, hold time.Duration) {
	w := l.cfg.Writer
	if w == nil || len(parts) == 0 {
		return
	}
	b := []byte(w.ID() + " " + l.contend.nonce + " ")
	b = strconv.AppendInt(b, time.Now().UnixMilli(), 10)
	b = append(b, ' ')
	for i, p := range parts {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(p), 10)
	}
	b = append(b, ' ')
	b = strconv.AppendInt(b, min(hold, maxContentionPause).Microseconds(), 10)
	sig := w.SignRaw(l.noticeBody(string(b)))
	b = append(b, ' ')
	b = base64.StdEncoding.AppendEncode(b, sig)
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
