package throttle

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

// started is a request a test let in: who sent it and how to end it.
type started struct {
	who     string
	release func()
}

// submit asks for n admissions of cost for principal of account, each in
// its own goroutine (Admit may wait), and reports each admission on out.
// Refusals are counted in refused.
func submit(f *Fair, account, principal string, cost int64, n int, out chan<- started, wg *sync.WaitGroup, refused *int, mu *sync.Mutex) {
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rel, ok := f.Admit(account, principal, cost)
			if !ok {
				mu.Lock()
				*refused++
				mu.Unlock()
				return
			}
			out <- started{account + "/" + principal, rel}
		}()
	}
}

// waitFor polls cond (the controller's state is reached by other
// goroutines) until it holds; it fails the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// admitNow admits a request that must not wait.
func admitNow(t *testing.T, f *Fair, account, principal string, cost int64) func() {
	t.Helper()
	done := make(chan func(), 1)
	go func() {
		rel, ok := f.Admit(account, principal, cost)
		if !ok {
			t.Errorf("%s/%s refused", account, principal)
			rel = func() {}
		}
		done <- rel
	}()
	select {
	case rel := <-done:
		return rel
	case <-time.After(5 * time.Second):
		t.Fatalf("%s/%s cost %d had to wait (stats %+v)", account, principal, cost, f.Stats())
		return nil
	}
}

// order releases the requests in service one at a time and returns who
// was let in after each release, n times. Each release makes room for
// exactly one waiting request, so the order is the controller's.
func order(t *testing.T, f *Fair, inService []func(), out <-chan started, n int) []string {
	t.Helper()
	var seq []string
	for len(seq) < n {
		inService[0]()
		inService = inService[1:]
		select {
		case s := <-out:
			seq = append(seq, s.who)
			inService = append(inService, s.release)
		case <-time.After(5 * time.Second):
			t.Fatalf("nothing let in after a release (stats %+v, order so far %v)", f.Stats(), seq)
		}
	}
	for _, rel := range inService {
		rel()
	}
	return seq
}

func count(seq []string, who string) int {
	n := 0
	for _, s := range seq {
		if s == who {
			n++
		}
	}
	return n
}

// crowd makes n other accounts active and idle: with a frozen clock they
// linger, so the shares are too small for anyone, and only the spare slots
// are handed out, in the order the tags decide.
func crowd(t *testing.T, f *Fair, n int) {
	for i := range n {
		admitNow(t, f, "quiet"+string(rune('0'+i)), "q", BaseCost)()
	}
}

// TestFairSharesByCost: two accounts waiting for the spare slots are let
// in by cost: one whose requests cost three times as much gets a third as
// many turns, and never waits more than four turns.
func TestFairSharesByCost(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	f := NewFair(FairConfig{Slots: 4, Cores: 2, Queue: 100, Now: c.now}) // requests of 2 BaseCost and more hold 2 slots
	crowd(t, f, 8)
	// One cheap request of each stays in service, so neither ever has
	// nothing in service (which would let one request of it start).
	pinA := admitNow(t, f, "A", "a", BaseCost)
	pinB := admitNow(t, f, "B", "b", BaseCost)
	var mu sync.Mutex
	var wg sync.WaitGroup
	refused := 0
	out := make(chan started, 100)
	a1 := admitNow(t, f, "A", "a", 2*BaseCost)
	submit(f, "A", "a", 2*BaseCost, 40, out, &wg, &refused, &mu)
	submit(f, "B", "b", 6*BaseCost, 40, out, &wg, &refused, &mu)
	waitFor(t, "80 waiting", func() bool { return f.Stats().Queued == 80 })
	seq := order(t, f, []func(){a1}, out, 40)
	if a, b := count(seq, "A/a"), count(seq, "B/b"); a < 29 || a > 31 || b < 9 || b > 11 {
		t.Fatalf("40 turns went %d to A (cost 2) and %d to B (cost 6), want 30 and 10: %v", a, b, seq)
	}
	for i := 0; i+4 < len(seq); i++ {
		if w := seq[i : i+5]; count(w, "B/b") == 0 {
			t.Fatalf("B waited 5 turns in a row at %d: %v", i, seq)
		}
	}
	pinA()
	pinB()
	drain(t, f, out, &wg)
	if refused != 0 {
		t.Fatalf("%d refused with queues of 40 (bound 100)", refused)
	}
}

// TestFairHoldsByCost: a costly request holds a core's worth of slots:
// beside an account encrypting with 16 requests in service, one signing
// with RSA gets one signature in its share of 8 slots, not eight.
func TestFairHoldsByCost(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	f := NewFair(FairConfig{Slots: 16, Cores: 2, Now: c.now}) // shares of 8 slots; a core is 8
	admitNow(t, f, "rsa", "r", BaseCost)()                    // both accounts active
	admitNow(t, f, "aes", "e", BaseCost)()
	var mu sync.Mutex
	var wg sync.WaitGroup
	refused := 0
	out := make(chan started, 100)
	submit(f, "aes", "e", CostOf("Encrypt", ""), 20, out, &wg, &refused, &mu)
	waitFor(t, "16 Encrypts in service", func() bool { return f.Stats().Queued == 4 && len(out) == 16 })
	submit(f, "rsa", "r", CostOf("Sign", "RSASSA_PSS_SHA_256"), 20, out, &wg, &refused, &mu)
	waitFor(t, "one signature in service", func() bool { return f.Stats().Queued == 23 && len(out) == 17 })
	if s := f.Stats(); s.InService != 16+8 {
		t.Fatalf("stats %+v, want 24 slots held", s)
	}
	drain(t, f, out, &wg)
}

// drain lets every waiting request in and out and checks the controller
// is empty afterwards.
func drain(t *testing.T, f *Fair, out chan started, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for {
		select {
		case s := <-out:
			s.release()
			continue
		case <-done:
		}
		break
	}
	for len(out) > 0 {
		(<-out).release()
	}
	if s := f.Stats(); s != (FairStats{Active: s.Active, Principals: s.Principals}) {
		t.Fatalf("after every release: %+v", s)
	}
}

// TestFairSharesBetweenPrincipals: inside an account, principals waiting
// for the spare slots take turns, however many requests each has waiting.
func TestFairSharesBetweenPrincipals(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	f := NewFair(FairConfig{Slots: 4, Cores: 2, Queue: 100, Now: c.now})
	crowd(t, f, 8)
	pin1 := admitNow(t, f, "A", "p1", BaseCost)
	pin2 := admitNow(t, f, "A", "p2", BaseCost)
	var mu sync.Mutex
	var wg sync.WaitGroup
	refused := 0
	out := make(chan started, 100)
	first := admitNow(t, f, "A", "p1", 2*BaseCost)
	submit(f, "A", "p1", 2*BaseCost, 60, out, &wg, &refused, &mu)
	submit(f, "A", "p2", 2*BaseCost, 6, out, &wg, &refused, &mu)
	waitFor(t, "66 waiting", func() bool { return f.Stats().Queued == 66 })
	seq := order(t, f, []func(){first}, out, 12)
	if n := count(seq, "A/p2"); n != 6 {
		t.Fatalf("in 12 turns p2 (6 waiting) got %d beside p1 (60 waiting), want 6: %v", n, seq)
	}
	pin1()
	pin2()
	drain(t, f, out, &wg)
}

// TestFairAloneIsNotLimited: a lone principal is held back only by the
// cores: any number of cheap requests, Cores key generations.
func TestFairAloneIsNotLimited(t *testing.T) {
	f := NewFair(FairConfig{Slots: 4, Cores: 2})
	var rels []func()
	for range 500 {
		rels = append(rels, admitNow(t, f, "A", "a", BaseCost))
	}
	rels = append(rels, admitNow(t, f, "A", "a", CostOf("CreateKey", "RSA_4096")))
	rels = append(rels, admitNow(t, f, "A", "a", CostOf("CreateKey", "RSA_4096")))
	var mu sync.Mutex
	var wg sync.WaitGroup
	refused := 0
	out := make(chan started, 10)
	submit(f, "A", "a", CostOf("CreateKey", "RSA_4096"), 1, out, &wg, &refused, &mu)
	waitFor(t, "a third key generation waiting", func() bool { return f.Stats().Queued == 1 })
	if s := f.Stats(); s.Long != 2 {
		t.Fatalf("stats %+v, want 2 key generations in service", s)
	}
	rels[len(rels)-1]()
	s := <-out
	s.release()
	for _, rel := range rels[:len(rels)-1] {
		rel()
	}
	drain(t, f, out, &wg)
}

// TestFairQuietAccountDoesNotQueue: while a busy account has more work in
// service than the instance's slots (it was alone), and more waiting, a
// quiet account's cheap requests start at once, and so do its requests up
// to its share; the busy account's wait.
func TestFairQuietAccountDoesNotQueue(t *testing.T) {
	f := NewFair(FairConfig{Slots: 8, Cores: 2})
	var busy []func()
	for range 64 {
		busy = append(busy, admitNow(t, f, "noisy", "n", BaseCost))
	}
	busy = append(busy, admitNow(t, f, "noisy", "n", CostOf("CreateKey", "RSA_4096")))
	busy = append(busy, admitNow(t, f, "noisy", "n", CostOf("CreateKey", "RSA_4096")))
	var mu sync.Mutex
	var wg sync.WaitGroup
	refused := 0
	out := make(chan started, 100)
	v1 := admitNow(t, f, "victim", "v", BaseCost)
	submit(f, "noisy", "n", BaseCost, 10, out, &wg, &refused, &mu)
	waitFor(t, "the busy account's requests waiting", func() bool { return f.Stats().Queued == 10 })
	// The victim's share is 8 slots / 2 accounts = 4.
	v := []func(){v1}
	for range 3 {
		v = append(v, admitNow(t, f, "victim", "v", BaseCost))
	}
	submit(f, "victim", "v", BaseCost, 1, out, &wg, &refused, &mu)
	waitFor(t, "the victim's fifth request waiting", func() bool { return f.Stats().Queued == 11 })
	// A victim request ending lets the victim's waiting request in, not
	// the busy account's (which is far over its share).
	v[0]()
	s := <-out
	if s.who != "victim/v" {
		t.Fatalf("after a victim request ended, %s was let in", s.who)
	}
	if len(out) != 0 {
		t.Fatalf("a busy account over its share was let in")
	}
	s.release()
	for _, rel := range append(busy, v[1:]...) {
		rel()
	}
	drain(t, f, out, &wg)
	if refused != 0 {
		t.Fatalf("%d refused", refused)
	}
}

// TestFairQueueIsBounded: a request that finds its account's queue full,
// by count or by the work waiting, is refused at once; other accounts'
// queues are their own.
func TestFairQueueIsBounded(t *testing.T) {
	f := NewFair(FairConfig{Slots: 3, Cores: 1, Queue: 3})
	var mu sync.Mutex
	var wg sync.WaitGroup
	refused := 0
	out := make(chan started, 100)
	a := admitNow(t, f, "A", "a", BaseCost)
	b := admitNow(t, f, "B", "b", BaseCost)
	a2 := admitNow(t, f, "A", "a", BaseCost)    // the spare slot
	o := admitNow(t, f, "A", "other", BaseCost) // one per principal always starts
	submit(f, "A", "a", BaseCost, 3, out, &wg, &refused, &mu)
	waitFor(t, "3 waiting", func() bool { return f.Stats().Queued == 3 })
	if rel, ok := f.Admit("A", "a", BaseCost); ok {
		rel()
		t.Fatal("a fourth request was queued behind a full queue of 3")
	}
	// Another principal of A shares A's queue; account B's is its own.
	if rel, ok := f.Admit("A", "other", 2*BaseCost); ok {
		rel()
		t.Fatal("another principal of A was queued behind A's full queue")
	}
	submit(f, "B", "b", BaseCost, 3, out, &wg, &refused, &mu)
	waitFor(t, "B's 3 waiting", func() bool { return f.Stats().Queued == 6 })
	for _, rel := range []func(){a, b, a2, o} {
		rel()
	}
	drain(t, f, out, &wg)
	if refused != 0 {
		t.Fatalf("%d of the queued requests refused", refused)
	}

	// By work: one key generation waits (an empty queue takes one), a
	// second would make 1.37 s of work for one core (QueueWork 1 s).
	keygen := CostOf("CreateKey", "RSA_4096")
	g := admitNow(t, f, "A", "a", keygen)
	submit(f, "A", "a", keygen, 1, out, &wg, &refused, &mu)
	waitFor(t, "a key generation waiting", func() bool { return f.Stats().Queued == 1 })
	if rel, ok := f.Admit("A", "a", keygen); ok {
		rel()
		t.Fatal("a second key generation was queued")
	}
	submit(f, "A", "a", BaseCost, 1, out, &wg, &refused, &mu) // cheap work still waits behind it
	waitFor(t, "a cheap request waiting", func() bool { return f.Stats().Queued == 2 })
	g()
	drain(t, f, out, &wg)
	if refused != 0 {
		t.Fatalf("%d refused behind one waiting key generation", refused)
	}
}

// TestFairLinger: a principal counts as active for Linger after its last
// request, then its neighbour is alone again.
func TestFairLinger(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	f := NewFair(FairConfig{Slots: 2, Cores: 2, Linger: 100 * time.Millisecond, Now: c.now})
	admitNow(t, f, "B", "b", BaseCost)() // B was active a moment ago
	r1 := admitNow(t, f, "A", "a", BaseCost)
	r2 := admitNow(t, f, "A", "a", BaseCost)
	done := make(chan bool, 1)
	go func() {
		rel, ok := f.Admit("A", "a", BaseCost)
		if ok {
			rel()
		}
		done <- ok
	}()
	waitFor(t, "A's third request waiting while B lingers", func() bool { return f.Stats().Queued == 1 })
	c.advance(150 * time.Millisecond)
	r3 := admitNow(t, f, "A", "a", BaseCost) // B has gone: A is alone
	if s := f.Stats(); s.Active != 1 {
		t.Fatalf("stats %+v after B's linger, want 1 active account", s)
	}
	r1()
	if !<-done {
		t.Fatal("the waiting request was refused")
	}
	r2()
	r3()
}

// TestFairLeavesNoGoroutine: waiting happens in the caller's goroutine;
// once every request has ended, nothing of the controller runs.
func TestFairLeavesNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	f := NewFair(FairConfig{Slots: 2, Cores: 1, Queue: 5})
	var mu sync.Mutex
	var wg sync.WaitGroup
	refused := 0
	out := make(chan started, 100)
	a := admitNow(t, f, "A", "a", BaseCost)
	b := admitNow(t, f, "B", "b", BaseCost)
	submit(f, "A", "a", BaseCost, 20, out, &wg, &refused, &mu)
	submit(f, "B", "b", 5*BaseCost, 20, out, &wg, &refused, &mu)
	waitFor(t, "queues full", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return refused+f.Stats().Queued+len(out) == 40
	})
	a()
	b()
	drain(t, f, out, &wg)
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
	if refused < 20 {
		t.Fatalf("%d of 40 refused with queues of 5", refused)
	}
}

// TestLimiterAdmit: a quota refuses first, under its family; fair sharing
// refuses under Overload; both are summarised for the ledger.
func TestLimiterAdmit(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	l := New(Config{Region: "eu-north-1", Now: c.now, Quotas: map[string]float64{"CreateKey": 1},
		Fair: &FairConfig{Slots: 1, Cores: 1, Queue: 1}})
	rel, refused := l.Admit("A", "CreateKey", BaseCost, Request{Operation: "CreateKey", PrincipalARN: "a"})
	if refused != "" {
		t.Fatalf("refused by %s", refused)
	}
	if _, refused := l.Admit("A", "CreateKey", BaseCost, Request{Operation: "CreateKey", PrincipalARN: "a"}); refused != "CreateKey" {
		t.Fatalf("second CreateKey in a second refused by %q, want CreateKey", refused)
	}
	// B makes it a contest: A's next Encrypt waits, the one after is refused.
	relB, _ := l.Admit("B", Symmetric, BaseCost, Request{Operation: "Encrypt", PrincipalARN: "b"})
	defer relB()
	waited := make(chan string, 1)
	go func() {
		rel, refused := l.Admit("A", Symmetric, BaseCost, Request{Operation: "Encrypt", PrincipalARN: "a"})
		if rel != nil {
			rel()
		}
		waited <- refused
	}()
	waitFor(t, "A's Encrypt waiting", func() bool { return l.Fair().Stats().Queued == 1 })
	if _, refused := l.Admit("A", Symmetric, BaseCost, Request{Operation: "Encrypt", PrincipalARN: "a", RequestID: "r"}); refused != Overload {
		t.Fatalf("refused by %q, want %s", refused, Overload)
	}
	got := l.Flush()
	if len(got) != 2 || got[0].Family != "CreateKey" || got[0].Quota != 1 || got[1].Family != Overload || got[1].Quota != 0 ||
		got[1].First.RequestID != "r" {
		t.Fatalf("summaries %+v", got)
	}
	rel()
	if r := <-waited; r != "" {
		t.Fatalf("the waiting Encrypt was refused by %s", r)
	}
}

// TestFairSharesCores: when accounts compete, each may burn its share of
// the cores (at least one) with key generation, and no more, even when
// another core is idle: a key generation could not give it back for
// hundreds of milliseconds.
func TestFairSharesCores(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	f := NewFair(FairConfig{Slots: 16, Cores: 2, Now: c.now})
	admitNow(t, f, "noisy", "n", BaseCost)() // both accounts active
	admitNow(t, f, "victim", "v", BaseCost)()
	keygen := CostOf("GenerateDataKeyPair", "RSA_4096")
	n1 := admitNow(t, f, "noisy", "n", keygen)
	var mu sync.Mutex
	var wg sync.WaitGroup
	refused := 0
	out := make(chan started, 10)
	submit(f, "noisy", "n", keygen, 1, out, &wg, &refused, &mu)
	waitFor(t, "the neighbour's second key generation waiting", func() bool { return f.Stats().Queued == 1 })
	v1 := admitNow(t, f, "victim", "v", keygen)
	v2 := admitNow(t, f, "victim", "v", BaseCost)
	v1()
	v2()
	if s := f.Stats(); s.Long != 1 || s.Queued != 1 {
		t.Fatalf("stats %+v after the victim's key generation ended, want the neighbour's one in service and one waiting", s)
	}
	n1()
	(<-out).release()
	drain(t, f, out, &wg)
}

// TestFairEveryPrincipalProgresses: however many principals hold the
// slots, one with nothing in service may start one request, costly or
// not; its second waits.
func TestFairEveryPrincipalProgresses(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	f := NewFair(FairConfig{Slots: 4, Cores: 2, Now: c.now})
	var held []func()
	for i := range 8 {
		held = append(held, admitNow(t, f, "busy"+string(rune('0'+i)), "b", BaseCost))
	}
	sign := CostOf("Sign", "RSASSA_PSS_SHA_256")
	first := admitNow(t, f, "X", "x", sign)
	var mu sync.Mutex
	var wg sync.WaitGroup
	refused := 0
	out := make(chan started, 10)
	submit(f, "X", "x", sign, 1, out, &wg, &refused, &mu)
	waitFor(t, "X's second signature waiting", func() bool { return f.Stats().Queued == 1 })
	first()
	(<-out).release()
	for _, rel := range held {
		rel()
	}
	drain(t, f, out, &wg)
}
