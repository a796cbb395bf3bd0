package keyservice_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/projections/keystate"
	"github.com/keyledger/keyledger/projections/policy"
)

// The service's unit tests run it over the interfaces it declares, with
// in-memory implementations: no NATS, no HTTP. The end-to-end tests under
// tests/ prove the same operations through the AWS SDK and the real ledger.

// memLedger links, encodes and hashes each event as the real ledger's
// group-commit writer does, then folds the record into the key state before
// Append returns, as gateway/node's OnCommit fold does for the writer.
type memLedger struct {
	state *keystate.State

	mu   sync.Mutex
	recs []event.Record
	prev event.Hash
	fail error // when set, every Append fails with it
	// lose is how many changes in a row lose their race; changes are the
	// partition keys of every change appended (or lost).
	lose    int
	changes [][]string
}

func (l *memLedger) Append(ctx context.Context, ev *event.Event) (event.Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return event.Record{}, l.fail
	}
	ev.Index, ev.Prev = uint64(len(l.recs)), l.prev
	raw := ev.AppendEncoded(nil)
	rec := event.Record{Seq: uint64(len(l.recs)) + 1, Event: ev, Raw: raw, Hash: event.Of(raw)}
	l.recs = append(l.recs, rec)
	l.prev = rec.Hash
	l.state.Apply([]event.Record{rec})
	return rec, nil
}

// Positions, AppendChange and Sync: one instance alone never loses a
// race (unless lose says how many times it should, in a row).
func (l *memLedger) Positions() ledger.Positions { return ledger.Positions{} }

func (l *memLedger) ContentionHold() time.Duration { return 0 }

func (l *memLedger) AppendChange(ctx context.Context, ev *event.Event, _ ledger.Positions, keys ...string) (event.Record, error) {
	l.mu.Lock()
	l.changes = append(l.changes, keys)
	if l.lose > 0 {
		l.lose--
		l.mu.Unlock()
		return event.Record{}, ledger.ErrConflict
	}
	l.mu.Unlock()
	return l.Append(ctx, ev)
}

func (l *memLedger) Sync(context.Context) error { return nil }

// records returns a copy of everything appended so far.
func (l *memLedger) records() []event.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]event.Record(nil), l.recs...)
}

// last is the most recent event.
func (l *memLedger) last(t *testing.T) *event.Event {
	t.Helper()
	recs := l.records()
	if len(recs) == 0 {
		t.Fatal("the ledger is empty")
	}
	return recs[len(recs)-1].Event
}

// memMaterials is a MaterialStore in a map.
type memMaterials struct {
	mu      sync.Mutex
	wrapped map[string][]byte
}

var errNoMaterial = errors.New("memMaterials: no such material")

func (m *memMaterials) Put(ctx context.Context, id string, wrapped []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.wrapped[id] = append([]byte(nil), wrapped...)
	return nil
}

func (m *memMaterials) Get(ctx context.Context, id string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w, ok := m.wrapped[id]
	if !ok {
		return nil, errNoMaterial
	}
	return append([]byte(nil), w...), nil
}

func (m *memMaterials) Destroy(ctx context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.wrapped, id)
	return nil
}

func (m *memMaterials) has(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.wrapped[id]
	return ok
}

// tamper flips a bit of a stored wrapped material.
func (m *memMaterials) tamper(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.wrapped[id][len(m.wrapped[id])-1] ^= 1
}

// fakeClock is a Clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

const (
	region  = "us-east-1"
	account = "111122223333"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// alice may do anything in the account (an identity policy allowing kms:*,
// under the default key policy that delegates to identity policies); bob
// has no identity policy, so only grants and key policies naming him let
// him in.
var (
	alice = keyservice.Caller{AccessKeyID: "AKIAALICE", PrincipalARN: "arn:aws:iam::" + account + ":user/alice",
		Account: account, Identity: []*policy.Document{mustParse(`{"Version":"2012-10-17","Statement":[
			{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}`)}, RequestID: "req"}
	bob = keyservice.Caller{AccessKeyID: "AKIABOB", PrincipalARN: "arn:aws:iam::" + account + ":user/bob", Account: account}
)

func mustParse(text string) *policy.Document {
	d, err := policy.Parse(text)
	if err != nil {
		panic(err)
	}
	return d
}

// fixture is one service over in-memory parts.
type fixture struct {
	svc    *keyservice.Service
	cfg    keyservice.Config
	state  *keystate.State
	ledger *memLedger
	mats   *memMaterials
	clock  *fakeClock
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	state := keystate.New()
	f := &fixture{state: state, ledger: &memLedger{state: state},
		mats: &memMaterials{wrapped: map[string][]byte{}}, clock: &fakeClock{now: t0}}
	f.cfg = keyservice.Config{Region: region, Clock: f.clock, Ledger: f.ledger, State: state,
		Materials: f.mats, RootKey: rootkey.Generate()}
	f.svc = keyservice.New(f.cfg)
	return f
}

// restart is a new service over the same ledger, state and material store:
// its material cache starts empty, as after a restart.
func (f *fixture) restart() { f.svc = keyservice.New(f.cfg) }

// createKey makes a key as alice and returns its id.
func (f *fixture) createKey(t *testing.T, in *keyservice.CreateKeyInput) string {
	t.Helper()
	if in == nil {
		in = &keyservice.CreateKeyInput{}
	}
	out, err := f.svc.CreateKey(context.Background(), alice, in)
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	return out.KeyMetadata.KeyId
}

func (f *fixture) key(t *testing.T, id string) keystate.Key {
	t.Helper()
	k, ok := f.state.Key(id)
	if !ok {
		t.Fatalf("key %s is not in the state", id)
	}
	return k
}

func (f *fixture) encrypt(t *testing.T, c keyservice.Caller, keyID string, pt []byte, encCtx map[string]string) []byte {
	t.Helper()
	out, err := f.svc.Encrypt(context.Background(), c, &keyservice.EncryptInput{KeyId: keyID,
		Plaintext: append([]byte(nil), pt...), EncryptionContext: maps.Clone(encCtx)})
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	return out.CiphertextBlob
}

// codeOf is the AWS error code a service error carries: "" for none.
func codeOf(err error) keyservice.Code {
	if err == nil {
		return ""
	}
	var e *keyservice.Error
	if !errors.As(err, &e) {
		return keyservice.Code(fmt.Sprintf("not a *keyservice.Error: %v", err))
	}
	return e.Code
}

// checkRecorded checks that the last event records op, refused with code
// (or accepted when code is ""): refusals are recorded like any request.
func (f *fixture) checkRecorded(t *testing.T, op string, code keyservice.Code) {
	t.Helper()
	ev := f.ledger.last(t)
	got := ""
	if ev.Error != nil {
		got = ev.Error.Code
	}
	if ev.Operation != op || got != string(code) {
		t.Errorf("last event: %s refused with %q; want %s refused with %q", ev.Operation, got, op, code)
	}
}

func ptr[T any](v T) *T { return &v }

// epochTimes lets cmp compare EpochTimes (time.Times underneath).
var epochTimes = cmp.Transformer("EpochTime", func(e keyservice.EpochTime) time.Time { return time.Time(e) })
