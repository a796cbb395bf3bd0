package ledger

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// JetStream gone silent. A batch's publish that no server answers (this
// instance's server is cut off from its cluster's quorum and forwards the
// message over a route that is dead but not yet closed) would hold up
// every request queued behind it for PublishTimeout and a read-back, and
// each would give up only after its client did. The requests in that
// batch must wait for its outcome: it may have been stored. The others
// need not. So:
//
//   - An unanswered publish is sent again every publishAttempt (the same
//     message: Nats-Msg-Id and the expected last sequence store it at
//     most once), so a stream leader elected meanwhile takes it at once.
//   - Once a commit has gone StallTimeout without any answer, or one
//     failed for want of an answer, JetStream is down for this instance:
//     while it is and a commit is in flight, Append (and AppendChange)
//     fail at once with ErrUnavailable, as do the requests queued behind
//     the commit, which were never published. The next batch, taken when
//     the writer is free, finds whether JetStream answers again; the first
//     acknowledged one ends it. So does Reachable (/readyz), when the
//     stream's leader answers having heard from a quorum since the stall
//     began: a gateway a load balancer left for not ready gets no request
//     whose commit could end it.
//   - "No responders" is an answer: the cluster is there and electing the
//     stream's leader (a leader killed: 4-9 s by nats-server's Raft
//     timeouts). Requests then wait for the election, as they did, rather
//     than fail while it runs.

// publishAttempt is how long one publish of a batch may go unanswered
// before the same message is sent again.
const publishAttempt = time.Second

// stallWatch follows the data writer's commits.
type stallWatch struct {
	mu    sync.Mutex
	down  atomic.Bool // JetStream stopped answering commits (until one is acknowledged)
	since time.Time   // when down last turned true (under mu)
	busy  atomic.Bool // a commit is in flight
	cur   *watchedCommit
}

// watchedCommit is one commit in flight (writer goroutine, but done,
// under stallWatch.mu, which the timer's goroutine reads).
type watchedCommit struct {
	timer      *time.Timer
	done       bool
	acked      bool // JetStream stored the batch
	unanswered bool // a publish of it failed for want of an answer
}

// refusing reports whether Append fails at once: JetStream is down and
// a commit is in flight.
func (s *stallWatch) refusing() bool { return s.down.Load() && s.busy.Load() }

// beginCommit notes a commit (a publish and, if it fails, its read-back)
// starting now; endCommit ends it.
func (l *Ledger) beginCommit() {
	c := &watchedCommit{}
	c.timer = time.AfterFunc(l.cfg.StallTimeout, func() { l.silent(c) })
	s := &l.stall
	s.mu.Lock()
	s.cur = c
	s.busy.Store(true)
	s.mu.Unlock()
}

// answered notes that JetStream answered the commit in flight, though not
// with an acknowledgement (no stream leader yet).
func (l *Ledger) answered() {
	if c := l.stall.cur; c != nil {
		c.timer.Reset(l.cfg.StallTimeout)
	}
}

// noteAck records how a publish of the commit in flight ended.
func (l *Ledger) noteAck(err error) {
	c := l.stall.cur
	if c == nil {
		return
	}
	switch {
	case err == nil:
		c.acked = true
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, jetstream.ErrNoStreamResponse):
		c.unanswered = true
	}
}

// endCommit ends the commit begun last.
func (l *Ledger) endCommit() {
	s := &l.stall
	s.mu.Lock()
	c := s.cur
	c.timer.Stop()
	c.done = true
	s.cur = nil
	wasDown := s.down.Load()
	switch {
	case c.acked:
		s.down.Store(false)
	case c.unanswered:
		s.goDown()
	}
	s.busy.Store(false)
	s.mu.Unlock()
	switch {
	case wasDown && !s.down.Load():
		l.cfg.Logger.Warn("ledger: JetStream acknowledges commits again; requests are queued for the ledger again")
	case !wasDown && s.down.Load():
		l.stopped()
	}
}

// silent runs when c has gone StallTimeout without an answer.
func (l *Ledger) silent(c *watchedCommit) {
	s := &l.stall
	s.mu.Lock()
	if c.done {
		s.mu.Unlock()
		return
	}
	wasDown := s.goDown()
	s.mu.Unlock()
	if !wasDown {
		l.stopped()
	}
	// What is queued was never published: it fails now rather than wait
	// for the commit in flight.
	for s.refusing() {
		select {
		case p := <-l.queue:
			p.done <- result{err: ErrUnavailable}
		default:
			return
		}
	}
}

// goDown notes JetStream down (under s.mu) and reports whether it was.
func (s *stallWatch) goDown() (was bool) {
	if was = s.down.Load(); !was {
		s.since = time.Now()
		s.down.Store(true)
	}
	return was
}

// stalledSince is when the stall began, if the ledger is Stalled.
func (l *Ledger) stalledSince() (time.Time, bool) {
	s := &l.stall
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.since, s.down.Load()
}

// answersAgain ends the stall that began at since, if it has not ended
// (and another begun) meanwhile: the stream's leader answered with a
// quorum heard from since then (Reachable).
func (l *Ledger) answersAgain(since time.Time) {
	s := &l.stall
	s.mu.Lock()
	ended := s.down.Load() && s.since.Equal(since)
	if ended {
		s.down.Store(false)
	}
	s.mu.Unlock()
	if ended {
		l.cfg.Logger.Warn("ledger: the stream's leader answers again, in touch with a quorum; requests are queued for the ledger again")
	}
}

func (l *Ledger) stopped() {
	l.cfg.Logger.Error("ledger: JetStream does not answer commits; requests fail at once while a commit is in flight, until one is acknowledged",
		"stall_timeout", l.cfg.StallTimeout)
}

// Stalled reports whether JetStream stopped answering this instance's
// commits: until one is acknowledged (or Reachable finds the stream's
// leader in touch with a quorum again), Append fails at once with
// ErrUnavailable while a commit is in flight.
func (l *Ledger) Stalled() bool { return l.stall.down.Load() }
