package node

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/sumdb/note"

	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/gateway/principals"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/backend"
	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/writer"
	"github.com/keyledger/keyledger/projections/keystate"
	"github.com/keyledger/keyledger/projections/policy"
)

// The node's unit tests start whole instances on an embedded, in-process
// nats-server (backend.Embedded) and drive the key service directly, without
// HTTP; tests/ drives the same instances through the AWS SDK.

const (
	testRegion  = "us-east-1"
	testAccount = "111122223333"
)

var testPrincipals = `{"accounts":{"` + testAccount + `":{"users":{
 "admin":{"accessKeys":[{"id":"AKIAADMIN00000001","secret":"admin-secret-000000000001"}],
  "policies":[{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:*","keyledger:*"],"Resource":"*"}]}]}}}}}`

var admin = keyservice.Caller{AccessKeyID: "AKIAADMIN00000001", PrincipalARN: "arn:aws:iam::" + testAccount + ":user/admin",
	Account: testAccount, Identity: []*policy.Document{mustPolicy(`{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}`)}, RequestID: "req"}

func mustPolicy(text string) *policy.Document {
	d, err := policy.Parse(text)
	if err != nil {
		panic(err)
	}
	return d
}

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// site is one data directory with its root and writer keys: an instance
// started on it again is a restart.
type site struct {
	t      *testing.T
	dir    string
	root   rootkey.Key
	writer *writer.Key
	clock  *testClock
	logs   *bytes.Buffer
	logMu  sync.Mutex
}

func newSite(t *testing.T) *site {
	t.Helper()
	dir := t.TempDir()
	w, _, err := writer.LoadOrCreate(filepath.Join(dir, "writer.key"))
	if err != nil {
		t.Fatal(err)
	}
	return &site{t: t, dir: dir, root: rootkey.Generate(), writer: w, logs: &bytes.Buffer{},
		clock: &testClock{now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}}
}

func (s *site) Write(p []byte) (int, error) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.logs.Write(p)
}

func (s *site) log() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.logs.String()
}

// backend opens the site's embedded NATS server; the test closes it.
func (s *site) backend() *backend.Backend {
	s.t.Helper()
	b, err := backend.Embedded(embedded.Options{DataDir: filepath.Join(s.dir, "jetstream"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		s.t.Fatal(err)
	}
	return b
}

func (s *site) config(tune ...func(*Config)) Config {
	s.t.Helper()
	dir, err := principals.Parse([]byte(testPrincipals))
	if err != nil {
		s.t.Fatal(err)
	}
	cfg := Config{Region: testRegion, RootKey: s.root, Clock: s.clock, Principals: dir,
		SchedulerInterval: 20 * time.Millisecond, Ledger: ledger.Config{Writer: s.writer},
		Logger: slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, f := range tune {
		f(&cfg)
	}
	return cfg
}

// start starts an instance on b, failing the test if it does not start.
func (s *site) start(b *backend.Backend, tune ...func(*Config)) *Node {
	s.t.Helper()
	n, err := Start(context.Background(), b, s.config(tune...))
	if err != nil {
		s.t.Fatalf("Start: %v", err)
	}
	return n
}

func closeNode(t *testing.T, n *Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func createKey(t *testing.T, n *Node, desc string) string {
	t.Helper()
	out, err := n.Service.CreateKey(context.Background(), admin, &keyservice.CreateKeyInput{Description: &desc})
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	return out.KeyMetadata.KeyId
}

// ownGoroutines lists the goroutines running this module's code, by the
// function nearest the top of each stack that is ours, except the
// caller's own goroutine.
func ownGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 {
			continue // this goroutine
		}
		for _, line := range strings.Split(g, "\n") {
			if strings.HasPrefix(line, "github.com/keyledger/keyledger/") && !strings.Contains(line, "gateway/node.Test") {
				out = append(out, strings.TrimPrefix(line[:strings.LastIndex(line, "(")], "github.com/keyledger/keyledger/"))
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// leftOver waits up to a few seconds for every goroutine of this module
// that was not running at baseline to end, and returns those that did not.
func leftOver(baseline []string) []string {
	var extra []string
	for deadline := time.Now().Add(5 * time.Second); ; {
		extra = extra[:0]
		base := slices.Clone(baseline)
		for _, g := range ownGoroutines() {
			if i := slices.Index(base, g); i >= 0 {
				base = slices.Delete(base, i, i+1)
				continue
			}
			extra = append(extra, g)
		}
		if len(extra) == 0 || time.Now().After(deadline) {
			return extra
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStartCloseLeavesNoGoroutine starts an instance with every background
// worker (snapshots, verifier, checkpoints), uses it, and closes it: none
// of its goroutines may outlive Close, and the embedded server's none
// outlive the backend.
func TestStartCloseLeavesNoGoroutine(t *testing.T) {
	s := newSite(t)
	b := s.backend()
	baseline := ownGoroutines()
	n := s.start(b, func(c *Config) {
		c.CheckpointSigner, c.CheckpointVerifier = testCheckpointKey(t, s.dir)
		c.CheckpointInterval = 10 * time.Millisecond
	})
	want := []string{"gateway/keyservice.(*Scheduler).Run", "gateway/node.(*Node).runFeed",
		"gateway/node.(*snapshotter).run", "gateway/node.runTiles", "ledger.(*Ledger).writer", "ledger/checkpoint.(*Checkpointer).Run"}
	var running []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		running = ownGoroutines()
		missing := slices.DeleteFunc(slices.Clone(want), func(w string) bool { return slices.Contains(running, w) })
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines %v not running; running: %v", missing, running)
		}
	}
	if got := len(n.workers); got != 6 { // feed, verifier, material check, snapshotter, checkpointer, scheduler
		t.Errorf("%d workers running, want 6", got)
	}
	createKey(t, n, "before close")
	closeNode(t, n)
	if extra := leftOver(baseline); len(extra) > 0 {
		t.Errorf("goroutines left running after Close: %v", extra)
	}
	b.Close()
	if extra := leftOver(nil); len(extra) > 0 {
		t.Errorf("goroutines left running after the backend closed: %v", extra)
	}
}

// TestFailedStartLeavesNoGoroutine: a start that fails after the ledger
// writer and the tile flusher run (the scheduler's lease bucket cannot be
// opened: a TTL it refuses) stops them again.
func TestFailedStartLeavesNoGoroutine(t *testing.T) {
	s := newSite(t)
	b := s.backend()
	defer b.Close()
	closeNode(t, s.start(b))
	baseline := ownGoroutines()
	var phases []string
	_, err := Start(context.Background(), b, s.config(func(c *Config) {
		c.SchedulerLeaseTTL = -time.Second
		c.onPhase = func(_ *Node, p string) { phases = append(phases, p) }
	}))
	if err == nil || !strings.Contains(err.Error(), "TTL") {
		t.Fatalf("Start with a lease TTL the bucket refuses: err = %v", err)
	}
	if want := []string{phaseOpening, phaseOpening, phaseRestoring, phaseReplaying, phaseWriting, phaseWiring, phaseStopped}; !slices.Equal(phases, want) {
		t.Errorf("phases = %q, want %q", phases, want)
	}
	if extra := leftOver(baseline); len(extra) > 0 {
		t.Errorf("goroutines left running after a failed Start: %v", extra)
	}
}

// TestUnregisteredWriterStartsReadOnly: an instance with a writer key the
// ledger has not registered (another instance's, or a new one) starts, is
// not ready, answers nothing and names the command that registers it.
func TestUnregisteredWriterStartsReadOnly(t *testing.T) {
	s := newSite(t)
	b := s.backend()
	defer b.Close()
	closeNode(t, s.start(b))
	other := writer.Generate()
	n, err := Start(context.Background(), b, s.config(func(c *Config) { c.Ledger.Writer = other }))
	if err != nil {
		t.Fatal(err)
	}
	defer closeNode(t, n)
	if err := n.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "keyledger writer register") ||
		!strings.Contains(err.Error(), other.PublicText()) {
		t.Fatalf("readiness of an unregistered instance: %v", err)
	}
	if !strings.Contains(s.log(), "keyledger writer register") {
		t.Error("the log does not say what to run")
	}
}

// TestReadyReflectsPhases asks Ready in every start-up phase (not ready,
// naming the phase), once serving (ready), and after Close (not ready).
func TestReadyReflectsPhases(t *testing.T) {
	s := newSite(t)
	b := s.backend()
	defer b.Close()
	ctx := context.Background()
	type seen struct{ phase, ready string }
	var got []seen
	n := s.start(b, func(c *Config) {
		c.onPhase = func(n *Node, p string) {
			err := n.Ready(ctx)
			if err == nil {
				got = append(got, seen{p, "ready"})
				return
			}
			if !errors.Is(err, ErrNotReady) {
				t.Errorf("Ready in phase %q: %v, not ErrNotReady", p, err)
			}
			got = append(got, seen{p, err.Error()})
		}
	})
	if err := n.Ready(ctx); err != nil {
		t.Fatalf("Ready once started: %v", err)
	}
	closeNode(t, n)
	err := n.Ready(ctx)
	if !errors.Is(err, ErrNotReady) {
		t.Fatalf("Ready after Close: %v", err)
	}
	var want []seen
	for _, p := range []string{phaseOpening, phaseOpening, phaseRestoring, phaseReplaying, phaseWriting, phaseWiring} {
		want = append(want, seen{p, "not ready: " + p})
	}
	want = append(want, seen{phaseServing, "ready"}, seen{phaseStopping, "not ready: " + phaseStopping},
		seen{phaseStopped, "not ready: " + phaseStopped})
	if !slices.Equal(got, want) {
		t.Errorf("Ready by phase:\n got %v\nwant %v", got, want)
	}
}

// TestRestartResumesState restarts instances on the same data directory:
// from the snapshot Close takes, from the ledger alone (snapshots off), and
// after a stop that took no snapshot (the tail after the last one folded).
// Each time the key state, the ledger head and the Merkle tree are what
// they were, and the instance keeps writing after them.
func TestRestartResumesState(t *testing.T) {
	s := newSite(t)
	b := s.backend()
	defer b.Close()
	n := s.start(b)
	keys := []string{createKey(t, n, "one"), createKey(t, n, "two")}
	if _, err := n.Service.DisableKey(context.Background(), admin, &keyservice.KeyIDInput{KeyId: keys[1]}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name         string
		tune         func(*Config)
		fromSnapshot bool
	}{
		{"from the shutdown snapshot", func(*Config) {}, true},
		{"snapshots off", func(c *Config) { c.Snapshots.Off = true }, false},
		{"no snapshot at shutdown", func(c *Config) { c.Snapshots.NotAtShutdown = true }, true},
		{"after a stop without a shutdown snapshot", func(*Config) {}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := n.State.Snapshot()
			head, size := n.Ledger.Head(), n.tree.Size()
			root := treeRoot(t, n, size)
			closeNode(t, n)
			n = s.start(b, tc.tune)
			if got := n.restored.resume != nil; got != tc.fromSnapshot {
				t.Errorf("restored from a snapshot: %v, want %v", got, tc.fromSnapshot)
			}
			if got := n.Ledger.Head(); got != head {
				t.Errorf("head after restart = %+v, want %+v", got, head)
			}
			if got := n.tree.Size(); got != size || treeRoot(t, n, size) != root {
				t.Errorf("merkle tree after restart: size %d, want %d, or another root", got, size)
			}
			if diff := cmp.Diff(before, n.State.Snapshot()); diff != "" {
				t.Errorf("key state after restart differs (-before +after):\n%s", diff)
			}
			k, ok := n.State.Key(keys[1])
			if !ok || k.State != keystate.Disabled {
				t.Errorf("key %s after restart: %+v, %v; want Disabled", keys[1], k.State, ok)
			}
			keys = append(keys, createKey(t, n, tc.name))
			if got := n.Ledger.Head().Count; got <= head.Count {
				t.Errorf("no event written after the restart: %d events", got)
			}
		})
	}
	closeNode(t, n)
	if !strings.Contains(s.log(), "projections restored from snapshot") {
		t.Error("no restart restored from a snapshot (log)")
	}
}

func treeRoot(t *testing.T, n *Node, size int64) string {
	t.Helper()
	r, err := n.tree.Root(size)
	if err != nil {
		t.Fatal(err)
	}
	return r.String()
}

// testCheckpointKey is a checkpoint signer and its verifier key.
func testCheckpointKey(t *testing.T, dir string) (note.Signer, string) {
	t.Helper()
	signer, vkey, err := merkle.LoadOrCreateKey(filepath.Join(dir, "checkpoint.key"), "keyledger-test")
	if err != nil {
		t.Fatal(err)
	}
	return signer, vkey
}
