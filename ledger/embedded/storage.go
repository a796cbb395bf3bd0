package embedded

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ErrDiskFull means the data directory's disk has less free space than a
// write needs plus the reserve (Options.MinFreeDisk).
var ErrDiskFull = errors.New("embedded: the data directory's disk is full")

// ErrStoreFailed means nats-server failed to store a write (its file store
// then refuses every later write until JetStream is restarted).
var ErrStoreFailed = errors.New("embedded: JetStream failed to store a write")

// DefaultMinFreeDisk is the space kept free on the data directory's disk:
// writes are refused below it, before JetStream's file store runs into
// ENOSPC (a failed write there sticks until the store is reopened).
const DefaultMinFreeDisk = 4 << 20

// healEvery bounds how often a failed store is reopened.
const healEvery = time.Second

// storage watches the disk under the JetStream store and the server's own
// reports of failed writes, and reopens JetStream when the cause is gone.
type storage struct {
	ns      *server.Server
	dir     string
	reserve int64 // < 0: no free-space check
	jsc     server.JetStreamConfig

	mu       sync.Mutex
	fault    error // the write failure the server reported, until healed
	healing  bool  // JetStream is being reopened (without mu held)
	late     error // a write failure reported while healing
	faultCtx context.Context
	signal   context.CancelCauseFunc
	lastHeal time.Time

	statMu    sync.Mutex
	statfs    func(dir string) (int64, error) // freeBytes; tests count calls
	statFree  int64                           // free bytes at the last statfs
	statAt    time.Time                       // when; zero: none yet
	sinceStat int64                           // bytes checked for since then
}

// A statfs per group commit was 1 % of the server's CPU under load. Check
// skips it while the last one is under statFresh old and left more than
// statSlack beyond the reserve and what was written since: another process
// would have to write that much in that time to fill the disk unseen (and
// JetStream's own write failure is the backstop, see writeFailed). Near
// the reserve every Check looks again.
const (
	statFresh = 50 * time.Millisecond
	statSlack = 256 << 20
)

// freeBytes returns the free bytes on the store's disk, for a write of n.
func (s *storage) freeBytes(n int) (int64, error) {
	s.statMu.Lock()
	defer s.statMu.Unlock()
	if !s.statAt.IsZero() && time.Since(s.statAt) < statFresh &&
		s.statFree-s.sinceStat-int64(n) > s.reserve+statSlack {
		s.sinceStat += int64(n)
		return s.statFree - s.sinceStat + int64(n), nil
	}
	free, err := s.statfs(s.dir)
	if err == nil {
		s.statFree, s.statAt, s.sinceStat = free, time.Now(), int64(n)
	}
	return free, err
}

func newStorage(dir string, reserve int64, jsc server.JetStreamConfig) *storage {
	s := &storage{dir: dir, reserve: reserve, jsc: jsc, statfs: freeBytes}
	s.faultCtx, s.signal = context.WithCancelCause(context.Background())
	return s
}

// writeFailed records a failed write the server logged, and wakes every
// writer waiting for an acknowledgement that will not come.
func (s *storage) writeFailed(msg string) {
	cause := ErrStoreFailed
	if strings.Contains(msg, "no space left") {
		cause = ErrDiskFull
	}
	err := fmt.Errorf("%w: %s", cause, msg)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.healing:
		if s.late == nil {
			s.late = err
		}
	case s.fault == nil:
		s.fault = err
		s.signal(err)
	}
}

// isWriteFailure reports whether a server log line says a write was lost:
// the file store's "Critical write error" (it refuses writes from then on)
// or JetStream being disabled after one.
func isWriteFailure(msg string) bool {
	return strings.Contains(strings.ToLower(msg), "critical write error") || strings.Contains(msg, "no space left") ||
		strings.Contains(msg, "disabling JetStream") || strings.Contains(msg, "will be DISABLED")
}

// Fault is done, with the failure as its cause, once the server failed to
// store a write; a publish waiting for its acknowledgement can stop there.
func (s *storage) Fault() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faultCtx
}

// Check returns nil when a write of about n bytes can be stored now, or an
// error naming why not. After a failed write it reopens JetStream once the
// disk has room again (at most once per healEvery), so writes resume
// without a restart.
func (s *storage) Check(n int) error {
	free, statErr := s.freeBytes(n)
	need := s.reserve + int64(n)
	room := statErr != nil || s.reserve < 0 || free >= need
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fault == nil && s.ns.JetStreamEnabled() {
		if !room {
			return fmt.Errorf("%w: %d bytes free on %s, a write needs %d (%d kept free)", ErrDiskFull, free, s.dir, n, s.reserve)
		}
		return nil
	}
	fault := s.fault
	if fault == nil {
		fault = fmt.Errorf("%w: JetStream is disabled", ErrStoreFailed)
	}
	if !room {
		return fmt.Errorf("%w (still %d bytes free on %s, a write needs %d)", fault, free, s.dir, need)
	}
	if time.Since(s.lastHeal) < healEvery || !s.ns.Running() {
		return fault // healed a moment ago, or the server is shutting down
	}
	s.lastHeal = time.Now()
	// The server logs while it shuts down and recovers: reopen without mu,
	// so writeFailed (called from its logger) does not wait for us.
	s.healing, s.late = true, nil
	s.mu.Unlock()
	err := s.reopen()
	s.mu.Lock()
	s.healing = false
	if err != nil {
		return fmt.Errorf("%w (reopening JetStream: %v)", fault, err)
	}
	if s.late != nil {
		s.fault = s.late
		return s.fault
	}
	s.fault = nil
	s.faultCtx, s.signal = context.WithCancelCause(context.Background())
	return nil
}

// reopen restarts JetStream with the configuration it started with: the
// file stores are recovered from disk (a torn last write is dropped) and
// their sticky write error is gone. Core NATS connections stay up.
func (s *storage) reopen() error {
	if s.ns.JetStreamEnabled() {
		if err := s.ns.ShutdownJetStream(); err != nil {
			return err
		}
	}
	cfg := s.jsc
	return s.ns.EnableJetStream(&cfg)
}
