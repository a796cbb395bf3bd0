package node

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/backend"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/writer"
	"github.com/keyledger/keyledger/projections/keystate"
)

// A cluster is several instances in this process on one nats-server (the
// embedded one, listening on loopback), each with its own connection, as
// instances behind one --nats-url are: per-material keys in the shared
// bucket, one deployment writer key and root key.
type cluster struct {
	t      *testing.T
	url    string
	creds  string
	root   rootkey.Key
	writer *writer.Key
	clock  *testClock
	logs   *site // collects every instance's log
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	dir := t.TempDir()
	srv, err := embedded.Start(embedded.Options{DataDir: filepath.Join(dir, "jetstream"), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	s := newSite(t)
	return &cluster{t: t, url: srv.ClientURL(), creds: filepath.Join(dir, "jetstream", embedded.KeyledgerSeedFile),
		root: s.root, writer: s.writer, clock: s.clock, logs: s}
}

// member is one instance of a cluster.
type member struct {
	name   string
	node   *Node
	b      *backend.Backend
	closed bool
}

// start starts an instance named name.
func (c *cluster) start(name string, tune ...func(*Config)) *member {
	c.t.Helper()
	b, err := backend.Connect(c.url, backend.Options{CredsFile: c.creds, Name: name})
	if err != nil {
		c.t.Fatal(err)
	}
	cfg := c.logs.config(tune...)
	cfg.Instance, cfg.RootKey, cfg.Clock, cfg.Ledger.Writer = name, c.root, c.clock, c.writer
	if cfg.SchedulerLeaseTTL == 0 {
		cfg.SchedulerLeaseTTL = time.Second
	}
	n, err := Start(context.Background(), b, cfg)
	if err != nil {
		b.Close()
		c.t.Fatalf("starting %s: %v", name, err)
	}
	m := &member{name: name, node: n, b: b}
	c.t.Cleanup(func() { m.close(c.t) })
	return m
}

// close stops the instance cleanly (releasing the scheduler lease).
func (m *member) close(t *testing.T) {
	if m.closed {
		return
	}
	m.closed = true
	closeNode(t, m.node)
	m.b.Close()
}

// kill stops the instance as a crash does: its connection goes first, so
// nothing it does on the way out (releasing the lease, a last append)
// reaches NATS.
func (m *member) kill(t *testing.T) {
	m.closed = true
	m.b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = m.node.Close(ctx)
}

// waitFor polls cond until it holds, failing the test after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	began := time.Now()
	for !cond() {
		if time.Since(began) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(began)
}

func holding(ms ...*member) *member {
	for _, m := range ms {
		if !m.closed && m.node.Scheduler.Holding() {
			return m
		}
	}
	return nil
}

// scheduleDeletion creates a key on m and schedules its deletion in 7 days.
func scheduleDeletion(t *testing.T, m *member) string {
	t.Helper()
	id := createKey(t, m.node, "to delete")
	days := int32(7)
	if _, err := m.node.Service.ScheduleKeyDeletion(context.Background(), admin,
		&keyservice.ScheduleKeyDeletionInput{KeyId: id, PendingWindowInDays: &days}); err != nil {
		t.Fatal(err)
	}
	return id
}

// ledgerEvents reads the whole stream through m's ledger.
func ledgerEvents(t *testing.T, m *member) []*event.Event {
	t.Helper()
	var out []*event.Event
	if _, err := m.node.Ledger.Replay(context.Background(), chain.Head{}, func(r event.Record) error {
		out = append(out, r.Event)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// deletions counts the KeyDeleted events for key id, and lists the
// scheduler lease holders in the order the ledger recorded them.
func deletions(evs []*event.Event, id string) (int, []string) {
	n := 0
	var holders []string
	for _, e := range evs {
		switch b := e.Body.(type) {
		case *event.KeyDeleted:
			if e.KeyID == id && !e.Refused() {
				n++
			}
		case *event.SchedulerLeaseTaken:
			holders = append(holders, b.Holder)
		}
	}
	return n, holders
}

func deleted(m *member, id string) bool {
	k, ok := m.node.State.Key(id)
	return !ok || k.State != keystate.PendingDeletion
}

// TestSchedulerTakesOverAfterKill: three instances, one runs the
// scheduler. It is killed (its lease is not released); another takes the
// scheduler over within seconds and carries out the deletion that falls
// due, exactly once. A clean stop hands the lease over at once.
func TestSchedulerTakesOverAfterKill(t *testing.T) {
	c := newCluster(t)
	a := c.start("a")
	waitFor(t, 10*time.Second, "a takes the scheduler", func() bool { return holding(a) == a })
	b, d := c.start("b"), c.start("c")
	id := scheduleDeletion(t, b)
	if h := holding(a, b, d); h != a {
		t.Fatalf("the scheduler moved before the kill: %v", h)
	}
	a.kill(t)
	c.clock.advance(8 * 24 * time.Hour) // the deletion falls due
	took := waitFor(t, 30*time.Second, "another instance takes the scheduler over", func() bool { return holding(b, d) != nil })
	t.Logf("scheduler taken over %v after the kill (lease TTL 1s)", took.Round(time.Millisecond))
	waitFor(t, 10*time.Second, "the deletion is carried out", func() bool { return deleted(b, id) && deleted(d, id) })
	next := holding(b, d)
	n, holders := deletions(ledgerEvents(t, next), id)
	if n != 1 {
		t.Errorf("%d KeyDeleted events for the key, want 1", n)
	}
	// The lease is recorded when there is work: a never had any.
	if !slices.Equal(holders, []string{next.name}) {
		t.Errorf("scheduler leases recorded: %v; want [%s]", holders, next.name)
	}
	// A clean stop releases the lease: the last instance takes over
	// without waiting for the TTL.
	other := b
	if next == b {
		other = d
	}
	next.close(t)
	waitFor(t, 10*time.Second, "the last instance takes over", func() bool { return holding(other) == other })
	if n, _ := deletions(ledgerEvents(t, other), id); n != 1 {
		t.Errorf("after the second takeover: %d KeyDeleted events, want 1", n)
	}
}

// pausable simulates a process stopped (SIGSTOP, a long GC pause) at a
// chosen point: once armed, the instance's scheduler blocks inside the
// append of a DeleteKey event — after it checked the key was due and
// destroyed the material, before the ledger saw the event — and its lease
// renewals block, until resumed.
type pausable struct {
	armed   atomic.Bool
	reached chan struct{} // closed when the scheduler blocked mid-action
	resume  chan struct{} // closed to let it go on
	once    sync.Once
	result  chan error // what the held append came to
}

func newPausable() *pausable {
	return &pausable{reached: make(chan struct{}), resume: make(chan struct{}), result: make(chan error, 1)}
}

func (p *pausable) pause(ctx context.Context) {
	p.once.Do(func() { close(p.reached) })
	select {
	case <-p.resume:
	case <-ctx.Done():
	}
}

type pausingLedger struct {
	keyservice.Ledger
	p *pausable
}

func (l pausingLedger) AppendChange(ctx context.Context, ev *event.Event, at ledger.Positions, keys ...string) (event.Record, error) {
	if !l.p.armed.Load() || ev.Operation != "DeleteKey" {
		return l.Ledger.AppendChange(ctx, ev, at, keys...)
	}
	l.p.pause(ctx)
	r, err := l.Ledger.AppendChange(ctx, ev, at, keys...)
	l.p.result <- err
	return r, err
}

type pausingLeases struct {
	keyservice.Leases
	p *pausable
}

func (l pausingLeases) Acquire(ctx context.Context, holder string) (keyservice.HeldLease, error) {
	h, err := l.Leases.Acquire(ctx, holder)
	if err != nil {
		return nil, err
	}
	return pausingLease{h, l.p}, nil
}

type pausingLease struct {
	keyservice.HeldLease
	p *pausable
}

func (l pausingLease) Renew(ctx context.Context) error {
	if l.p.armed.Load() {
		l.p.pause(ctx)
	}
	return l.HeldLease.Renew(ctx)
}

// TestPausedHolderCannotActOnLostLease: the scheduler's holder stops in
// the middle of deleting a due key (renewals stopped too) for longer than
// its lease lives. Another instance takes over and deletes the key. When
// the paused one wakes, its DeleteKey is refused: by the fence, checked at
// the event's place, when its writer has caught up; by JetStream itself
// (the stream moved on since the head it linked after) when its writer has
// not. Either way the ledger holds one KeyDeleted, and the woken instance
// learns it lost the lease.
func TestPausedHolderCannotActOnLostLease(t *testing.T) {
	for _, tc := range []struct {
		name   string
		follow time.Duration // how often the paused instance's writer folds others' events
		want   string        // what refuses its append
	}{
		// The paused DeleteKey is a change validated at the positions taken
		// before it paused: the ledger refuses it whatever moved since (b's
		// lease record, b's deletion), whether or not this instance's
		// follower folded them, and validated again the fence refuses it.
		{"writer caught up", 0, "another writer appended first"},
		{"writer stale", time.Hour, "another writer appended first"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t)
			p := newPausable()
			a := c.start("a", func(cfg *Config) {
				cfg.Ledger.FollowInterval = tc.follow
				cfg.wrapLedger = func(l keyservice.Ledger) keyservice.Ledger { return pausingLedger{l, p} }
				cfg.wrapLeases = func(l keyservice.Leases) keyservice.Leases { return pausingLeases{l, p} }
			})
			waitFor(t, 10*time.Second, "a takes the scheduler", func() bool { return holding(a) == a })
			id := scheduleDeletion(t, a)
			b := c.start("b")
			p.armed.Store(true)
			c.clock.advance(8 * 24 * time.Hour)
			select {
			case <-p.reached:
			case <-time.After(10 * time.Second):
				t.Fatal("a's scheduler did not reach the deletion")
			}
			// a is paused mid-action: b takes over once a's lease expires.
			waitFor(t, 30*time.Second, "b takes the scheduler over", func() bool { return holding(b) == b })
			waitFor(t, 10*time.Second, "b deletes the key", func() bool { return deleted(b, id) })
			if tc.follow == 0 {
				waitFor(t, 10*time.Second, "a's writer folds b's events", func() bool { return deleted(a, id) })
			}
			close(p.resume)
			var err error
			select {
			case err = <-p.result:
			case <-time.After(20 * time.Second):
				t.Fatal("a's append did not return after it woke")
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("the woken holder's DeleteKey: err = %v, want refused (%q)", err, tc.want)
			}
			waitFor(t, 10*time.Second, "a learns it lost the lease", func() bool { return !a.node.Scheduler.Holding() })
			waitFor(t, 10*time.Second, "a folds the deletion", func() bool { return deleted(a, id) })
			n, holders := deletions(ledgerEvents(t, b), id)
			if n != 1 {
				t.Errorf("%d KeyDeleted events for the key, want 1", n)
			}
			if !slices.Equal(holders, []string{"a", "b"}) {
				t.Errorf("scheduler leases recorded: %v, want [a b]", holders)
			}
			if !strings.Contains(c.logs.log(), "scheduler lease lost") {
				t.Error("a did not log losing the lease")
			}
		})
	}
}
