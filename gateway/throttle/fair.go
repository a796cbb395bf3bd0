package throttle

import (
	"runtime"
	"sync"
	"time"
)

// FairConfig configures a Fair admission controller. Zero fields take the
// defaults.
type FairConfig struct {
	// Slots is how much work may be in service at once while principals
	// compete, in slots: a request whose cost is at most BaseCost holds
	// one slot, a costlier one proportionally more, up to one core's
	// worth (Slots/Cores). A request holds its slots until it is
	// answered, its ledger commit included: most of a cheap request's
	// time is that commit, whose latency every request shares and which
	// grows with the requests in it, so the slots bound what competing
	// principals put in the commit pipeline. More slots give two busy
	// principals more together (group commit fills its batches from the
	// requests in flight) and a light one a longer wait; fewer, the
	// reverse. Default 16 per core (see the package doc's measurements).
	Slots int
	// Cores is how many requests may burn a whole core at once (key
	// generation): default runtime.GOMAXPROCS.
	Cores int
	// Queue bounds one account's waiting requests; a request that finds
	// its account's queue full is refused at once. Default 256 per core.
	Queue int
	// QueueWork bounds one account's waiting work by its estimated
	// duration: the queued cost (µs of CPU) divided by Cores. A request
	// that would make it longer is refused at once, unless the queue is
	// empty (an account can always wait with one request). Default 1s.
	QueueWork time.Duration
	// Linger is how long a principal counts as active after its last
	// request ended. A closed-loop client leaves gaps between requests;
	// without it a neighbour would look alone in every gap. Default 100ms.
	Linger time.Duration
	Now    func() time.Time // default time.Now
}

// Fair is the admission controller in front of the work: it lets requests
// in while there is room, and when principals compete for the instance it
// shares it fairly, first between accounts and then between the
// principals of an account, weighting each request by its estimated cost
// (CostOf). Requests beyond their shares wait in a queue per principal
// and are let in, in start-time fair queuing order, as requests end; a
// request that finds its account's queued requests at their bound is
// refused at once. Nothing waits on a timer.
//
// The rules, for a request of principal p in account a:
//   - While p is the only active principal, nothing limits it but the
//     cores: at most Cores core-burning requests (key generation, cost
//     LongCost and more) at once. One busy client gets the whole instance.
//   - Otherwise it starts at once if it fits in a's share (Slots divided
//     among the active accounts) and p's share of that (divided among a's
//     active principals), whatever others hold. A principal with nothing
//     in service may always start one request: a quiet principal never
//     queues behind a busy one, and however many principals are active,
//     each makes progress. Core-burning requests share the cores instead:
//     an account may run its share of them, at least one.
//   - Otherwise it waits, and starts when it fits in its shares or in the
//     slots left over (never a core-burning one: it could not give them
//     back for as long as it runs). Whenever a request ends, waiting requests
//     within their shares go first; the spare slots go to the one whose
//     account, then principal, has received the least service so far,
//     counted in cost (start-time fair queuing's virtual start tags).
//
// Fair is safe for concurrent use; it holds no secret. Waiting happens in
// the caller's goroutine: Fair starts none.
type Fair struct {
	cfg     FairConfig
	perCore int // slots a core-sized request holds

	mu        sync.Mutex
	accounts  map[string]*fairAccount
	waiting   map[*fairAccount]struct{} // accounts with queued requests
	active    int                       // active accounts
	inService int                       // slots held
	long      int                       // core-sized requests in service
	v         int64                     // virtual time between accounts (µs of cost)
	swept     time.Time
}

type fairAccount struct {
	name       string
	f, v       int64 // finish tag; virtual time between its principals
	inService  int   // slots held
	long       int   // core-burning requests in service
	queued     int   // requests waiting
	queuedWork int64 // their cost, µs
	principals map[string]*fairPrincipal
	active     int  // active principals
	isActive   bool // counted in Fair.active
}

type fairPrincipal struct {
	f         int64
	inService int // slots held
	long      int // core-burning requests in service
	longHold  int // slots they hold
	queue     []*waiter
	last      time.Time // when a request of it last started or ended
	isActive  bool      // counted in fairAccount.active
}

// waiter is one request: admitted, or waiting for ready.
type waiter struct {
	a     *fairAccount
	p     *fairPrincipal
	cost  int64
	hold  int
	ready chan struct{}
}

// Defaults per core (GOMAXPROCS) of FairConfig's Slots and Queue.
const (
	DefaultSlotsPerCore = 16
	DefaultQueuePerCore = 256
)

// NewFair returns a Fair admission controller.
func NewFair(cfg FairConfig) *Fair {
	if cfg.Cores <= 0 {
		cfg.Cores = runtime.GOMAXPROCS(0)
	}
	if cfg.Slots <= 0 {
		cfg.Slots = DefaultSlotsPerCore * cfg.Cores
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueuePerCore * cfg.Cores
	}
	if cfg.QueueWork <= 0 {
		cfg.QueueWork = time.Second
	}
	if cfg.Linger <= 0 {
		cfg.Linger = 100 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Fair{cfg: cfg, perCore: max(1, cfg.Slots/cfg.Cores), accounts: map[string]*fairAccount{},
		waiting: map[*fairAccount]struct{}{}}
}

// Config returns the configuration in force, defaults filled in.
func (f *Fair) Config() FairConfig { return f.cfg }

// Admit lets a request of cost (µs of CPU, CostOf) from principal of
// account in: at once, after waiting its turn, or not at all when its
// account's queue is full (ok false, at once). When ok, release must be
// called once the request is answered, its ledger commit included.
func (f *Fair) Admit(account, principal string, cost int64) (release func(), ok bool) {
	now := f.cfg.Now()
	f.mu.Lock()
	f.sweep(now)
	a := f.accounts[account]
	if a == nil {
		a = &fairAccount{name: account, principals: map[string]*fairPrincipal{}}
		f.accounts[account] = a
	}
	p := a.principals[principal]
	if p == nil {
		p = &fairPrincipal{}
		a.principals[principal] = p
	}
	f.activate(a, p, now)
	w := &waiter{a: a, p: p, cost: max(cost, 1), hold: f.holdOf(cost)}
	if len(p.queue) == 0 && (f.guaranteed(w) || len(f.waiting) == 0 && f.spare(w)) {
		f.start(w)
		f.mu.Unlock()
		return func() { f.release(w) }, true
	}
	if a.queued > 0 && (a.queued >= f.cfg.Queue ||
		time.Duration(a.queuedWork+w.cost)*time.Microsecond/time.Duration(f.cfg.Cores) > f.cfg.QueueWork) {
		f.mu.Unlock()
		return nil, false
	}
	w.ready = make(chan struct{})
	p.queue = append(p.queue, w)
	a.queued++
	a.queuedWork += w.cost
	f.waiting[a] = struct{}{}
	f.dispatch() // spare slots go to whoever's turn it is
	f.mu.Unlock()
	<-w.ready
	return func() { f.release(w) }, true
}

// holdOf is how many slots a request of cost holds: one per BaseCost, at
// least one, at most a core's worth.
func (f *Fair) holdOf(cost int64) int {
	return int(min(max(1, (cost+BaseCost/2)/BaseCost), int64(f.perCore)))
}

func (f *Fair) isLong(w *waiter) bool { return w.cost >= LongCost }

// guaranteed reports whether w may start whatever else is in service or
// waiting: its principal is alone, or w fits in its account's and
// principal's shares, or its principal has nothing else in service (beside
// key generations). A core-burning request is counted in cores instead of
// slots: an account's share of the cores, at least one, and never more
// than Cores in all.
func (f *Fair) guaranteed(w *waiter) bool {
	alone := f.active <= 1 && w.a.active <= 1
	if f.isLong(w) {
		if f.long >= f.cfg.Cores {
			return false
		}
		coresA := max(1, f.cfg.Cores/max(f.active, 1))
		return alone || w.a.long < coresA && w.p.long < max(1, coresA/max(w.a.active, 1))
	}
	if alone || w.p.inService == w.p.longHold {
		return true
	}
	shareA := float64(f.cfg.Slots) / float64(max(f.active, 1))
	shareP := shareA / float64(max(w.a.active, 1))
	return float64(w.a.inService+w.hold) <= shareA && float64(w.p.inService+w.hold) <= shareP
}

// spare reports whether w fits in the slots left over. A core-burning
// request never borrows: it could not give the slots back for as long as
// it runs, when their owner comes back for them.
func (f *Fair) spare(w *waiter) bool {
	return f.inService+w.hold <= f.cfg.Slots && !f.isLong(w)
}

// start puts w in service and charges its cost to its account's and
// principal's start-time fair queuing tags.
func (f *Fair) start(w *waiter) {
	a, p := w.a, w.p
	s := max(a.f, f.v)
	a.f, f.v = s+w.cost, s
	sp := max(p.f, a.v)
	p.f, a.v = sp+w.cost, sp
	f.inService += w.hold
	a.inService += w.hold
	p.inService += w.hold
	if f.isLong(w) {
		f.long++
		a.long++
		p.long++
		p.longHold += w.hold
	}
}

func (f *Fair) release(w *waiter) {
	now := f.cfg.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inService -= w.hold
	w.a.inService -= w.hold
	w.p.inService -= w.hold
	w.p.last = now
	if f.isLong(w) {
		f.long--
		w.a.long--
		w.p.long--
		w.p.longHold -= w.hold
	}
	f.dispatch()
}

// dispatch starts waiting requests while one fits: first those within
// their shares, then any in the spare slots; among them, the head of a
// principal's queue whose account, then principal, has the smallest start
// tag.
func (f *Fair) dispatch() {
	for len(f.waiting) > 0 {
		w := f.next(f.guaranteed)
		if w == nil {
			if w = f.next(f.spare); w == nil {
				return
			}
		}
		a, p := w.a, w.p
		p.queue[0] = nil
		p.queue = p.queue[1:]
		if len(p.queue) == 0 {
			p.queue = nil
		}
		a.queued--
		a.queuedWork -= w.cost
		if a.queued == 0 {
			delete(f.waiting, a)
		}
		f.start(w)
		close(w.ready)
	}
}

// next returns the waiting request that fits and has the smallest tags,
// or nil.
func (f *Fair) next(fits func(*waiter) bool) *waiter {
	var best *waiter
	var bestA, bestP int64
	for a := range f.waiting {
		sa := max(a.f, f.v)
		if best != nil && sa > bestA {
			continue
		}
		for _, p := range a.principals {
			if len(p.queue) == 0 || !fits(p.queue[0]) {
				continue
			}
			sp := max(p.f, a.v)
			if best == nil || sa < bestA || (sa == bestA && sp < bestP) {
				best, bestA, bestP = p.queue[0], sa, sp
			}
		}
	}
	return best
}

// activate marks p (and its account) active as a request of it arrives.
func (f *Fair) activate(a *fairAccount, p *fairPrincipal, now time.Time) {
	p.last = now
	if !p.isActive {
		p.isActive = true
		a.active++
	}
	if !a.isActive {
		a.isActive = true
		f.active++
	}
}

// sweep, at most every Linger/4, retires principals idle for longer than
// Linger (and accounts left without an active principal), and forgets
// idle ones: their tags would be caught up to the virtual time anyway.
func (f *Fair) sweep(now time.Time) {
	if now.Sub(f.swept) < f.cfg.Linger/4 {
		return
	}
	f.swept = now
	for name, a := range f.accounts {
		for id, p := range a.principals {
			if p.inService > 0 || len(p.queue) > 0 || now.Sub(p.last) < f.cfg.Linger {
				continue
			}
			if p.isActive {
				p.isActive = false
				a.active--
			}
			delete(a.principals, id)
		}
		if a.active == 0 && a.isActive {
			a.isActive = false
			f.active--
		}
		if len(a.principals) == 0 {
			delete(f.accounts, name)
		}
	}
}

// FairStats is a snapshot of a Fair controller.
type FairStats struct {
	InService int // slots held
	Long      int // core-sized requests in service
	Queued    int // requests waiting
	Active    int // active accounts
	// Principals counts the principals tracked (active, or idle but not
	// yet forgotten): what the controller's memory grows with.
	Principals int
}

// Stats returns the controller's state now.
func (f *Fair) Stats() FairStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := FairStats{InService: f.inService, Long: f.long, Active: f.active}
	for a := range f.waiting {
		s.Queued += a.queued
	}
	for _, a := range f.accounts {
		s.Principals += len(a.principals)
	}
	return s
}
