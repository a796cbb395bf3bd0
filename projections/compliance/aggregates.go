package compliance

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keyledger/keyledger/ledger/event"
)

// Aggregates are the compliance figures a report needs beyond the key
// state, folded live event by event, so a report reads them instead of the
// whole ledger: per-account event counts and first/last times, per-day
// denials per account, per-key per-day usage (and its running total, to
// rank keys without summing days), the principals summary in force and
// each key's account. It is a pure fold, safe for concurrent use, and
// snapshotted with the other projections (AggregatesSnapshot).
type Aggregates struct {
	mu  sync.RWMutex
	s   AggregatesSnapshot
	day day // the last day apply named
}

// day is one UTC day and its name in the aggregates.
type day struct {
	start, end time.Time
	name       string
}

// dayOf names t's UTC day: events come in time order, so this formats a
// new name once a day rather than once per event.
func (a *Aggregates) dayOf(t time.Time) string {
	if !t.Before(a.day.start) && t.Before(a.day.end) {
		return a.day.name
	}
	u := t.UTC()
	start := time.Date(u.Year(), u.Month(), u.Day(), 0, 0, 0, 0, time.UTC)
	a.day = day{start: start, end: start.AddDate(0, 0, 1), name: u.Format("2006-01-02")}
	return a.day.name
}

// AggregatesSnapshot is the whole of Aggregates, as stored in a snapshot.
type AggregatesSnapshot struct {
	Events     map[string]uint64         `json:"events"` // account → events
	First      map[string]time.Time      `json:"first"`  // account → first event time
	Last       map[string]time.Time      `json:"last"`
	Denied     map[string]map[string]int `json:"denied"` // account → day → AccessDenied refusals
	Usage      map[string]map[string]int `json:"usage"`  // key → day → successful crypto operations
	UsageTotal map[string]int            `json:"usageTotal"`
	KeyAccount map[string]string         `json:"keyAccount"` // key → the account that created it
	Principals string                    `json:"principals"` // the PrincipalsConfigured summary in force
}

// NewAggregates returns empty aggregates.
func NewAggregates() *Aggregates { return RestoreAggregates(AggregatesSnapshot{}) }

// RestoreAggregates continues aggregates from a snapshot.
func RestoreAggregates(s AggregatesSnapshot) *Aggregates {
	c := cloneAggregates(s)
	return &Aggregates{s: c}
}

func cloneAggregates(s AggregatesSnapshot) AggregatesSnapshot {
	orEmpty := func(m map[string]map[string]int) map[string]map[string]int {
		out := make(map[string]map[string]int, len(m))
		for k, v := range m {
			out[k] = maps.Clone(v)
		}
		return out
	}
	c := AggregatesSnapshot{Events: maps.Clone(s.Events), First: maps.Clone(s.First), Last: maps.Clone(s.Last),
		Denied: orEmpty(s.Denied), Usage: orEmpty(s.Usage), UsageTotal: maps.Clone(s.UsageTotal),
		KeyAccount: maps.Clone(s.KeyAccount), Principals: s.Principals}
	if c.Events == nil {
		c.Events = map[string]uint64{}
	}
	if c.First == nil {
		c.First = map[string]time.Time{}
	}
	if c.Last == nil {
		c.Last = map[string]time.Time{}
	}
	if c.UsageTotal == nil {
		c.UsageTotal = map[string]int{}
	}
	if c.KeyAccount == nil {
		c.KeyAccount = map[string]string{}
	}
	return c
}

// Snapshot copies the aggregates.
func (a *Aggregates) Snapshot() AggregatesSnapshot {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return cloneAggregates(a.s)
}

// Apply folds committed records in order.
func (a *Aggregates) Apply(recs []event.Record) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range recs {
		a.apply(r)
	}
}

func (a *Aggregates) apply(r event.Record) {
	e, s := r.Event, &a.s
	if _, ok := e.Body.(*event.KeyCreated); ok && !e.Refused() {
		s.KeyAccount[e.KeyID] = e.Account
	}
	if p, ok := e.Body.(*event.PrincipalsConfigured); ok && !e.Refused() {
		s.Principals = p.Summary
	}
	if cryptoOps[e.Operation] && e.KeyID != "" && !e.Refused() {
		// Usage is the key's, whoever used it: it counts for the key's account.
		day := a.dayOf(e.Time)
		if s.Usage[e.KeyID] == nil {
			s.Usage[e.KeyID] = map[string]int{}
		}
		s.Usage[e.KeyID][day]++
		s.UsageTotal[e.KeyID]++
	}
	s.Events[e.Account]++
	if f, ok := s.First[e.Account]; !ok || e.Time.Before(f) {
		s.First[e.Account] = e.Time
	}
	if e.Time.After(s.Last[e.Account]) {
		s.Last[e.Account] = e.Time
	}
	// A denial counts for the caller's account, as AWS logs a denied
	// cross-account request only there.
	if e.Refused() && e.Error.Code == "AccessDeniedException" {
		if s.Denied[e.Account] == nil {
			s.Denied[e.Account] = map[string]int{}
		}
		s.Denied[e.Account][a.dayOf(e.Time)]++
	}
}

// KeyUsage is a key's successful cryptographic operations per day
// (YYYY-MM-DD, UTC), and the account that created it ("" for a key the
// aggregates never saw created).
func (a *Aggregates) KeyUsage(keyID string) (days map[string]int, account string) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return maps.Clone(a.s.Usage[keyID]), a.s.KeyAccount[keyID]
}

// view is what one report reads: the covered accounts' figures, with
// usage series only for the n busiest keys. It copies only those, never
// the whole history of usage.
type view struct {
	events      uint64
	first, last time.Time
	denied      map[string]int
	usage       []Series
	principals  string
}

func (a *Aggregates) view(covers func(account string) bool, busiest int) view {
	a.mu.RLock()
	defer a.mu.RUnlock()
	v := view{denied: map[string]int{}, principals: a.s.Principals}
	for account, n := range a.s.Events {
		if !covers(account) {
			continue
		}
		v.events += n
		if f := a.s.First[account]; v.first.IsZero() || f.Before(v.first) {
			v.first = f
		}
		if l := a.s.Last[account]; l.After(v.last) {
			v.last = l
		}
		for day, c := range a.s.Denied[account] {
			v.denied[day] += c
		}
	}
	type total struct {
		key string
		n   int
	}
	var totals []total
	for k, n := range a.s.UsageTotal {
		if covers(a.s.KeyAccount[k]) {
			totals = append(totals, total{k, n})
		}
	}
	slices.SortFunc(totals, func(x, y total) int {
		if x.n != y.n {
			return y.n - x.n
		}
		return strings.Compare(x.key, y.key)
	})
	for i, t := range totals {
		if i == busiest {
			break
		}
		v.usage = append(v.usage, Series{Key: t.key, Counts: maps.Clone(a.s.Usage[t.key])})
	}
	return v
}
