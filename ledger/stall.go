package ledger

import (
	"sync"
	"sync/atomic"
	"time"
)

// Stalled commits. A commit that JetStream does not answer (this
// instance's server is cut off from its cluster's quorum: the publish
// waits out PublishTimeout, then the read-back) would hold up every
// request queued behind it for as long, and each gives up only after its
// client did. The requests in that commit must wait for its outcome: it
// may have been stored. The others need not. Once a commit has gone
// unanswered for StallTimeout the ledger is stalled: Append fails at once
// with ErrUnavailable, and so do the requests queued behind the commit,
// which were never published, as does AppendChange. The stall ends with
// the commit, whatever its outcome; the next batch finds whether
// JetStream answers again.

// stallWatch counts the commits in flight that went unanswered for
// StallTimeout.
type stallWatch struct {
	mu      sync.Mutex
	n       int         // such commits in flight
	stalled atomic.Bool // n > 0
}

// watchedCommit is one commit in flight.
type watchedCommit struct {
	done, fired bool // under stallWatch.mu
}

// watchCommit notes a commit (a publish and, if it fails, its read-back)
// starting now; end must be called once its outcome is known.
func (l *Ledger) watchCommit() (end func()) {
	c := &watchedCommit{}
	t := time.AfterFunc(l.cfg.StallTimeout, func() { l.stallOn(c) })
	return func() {
		t.Stop()
		s := &l.stall
		s.mu.Lock()
		c.done = true
		resumed := false
		if c.fired {
			s.n--
			resumed = s.n == 0
			s.stalled.Store(s.n > 0)
		}
		s.mu.Unlock()
		if resumed {
			l.cfg.Logger.Warn("ledger: JetStream answers commits again; requests are queued for the ledger again")
		}
	}
}

// stallOn runs when c has gone unanswered for StallTimeout.
func (l *Ledger) stallOn(c *watchedCommit) {
	s := &l.stall
	s.mu.Lock()
	if c.done {
		s.mu.Unlock()
		return
	}
	c.fired = true
	s.n++
	first := s.n == 1
	s.stalled.Store(true)
	s.mu.Unlock()
	if first {
		l.cfg.Logger.Error("ledger: JetStream has not answered a commit; requests fail at once until it does",
			"waited", l.cfg.StallTimeout)
	}
	// What is queued was never published: it fails now rather than wait
	// for the stalled commit to end.
	for s.stalled.Load() {
		select {
		case p := <-l.queue:
			p.done <- result{err: ErrUnavailable}
		default:
			return
		}
	}
}

// Stalled reports whether a commit has gone unanswered by JetStream for
// longer than StallTimeout (Append then fails at once with
// ErrUnavailable).
func (l *Ledger) Stalled() bool { return l.stall.stalled.Load() }
