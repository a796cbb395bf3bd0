package throttle

import (
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Table names a set of default quotas.
type Table string

const (
	// NoQuotas: no per-operation quota unless configured, except
	// keyledger's own keyledger-audit family (DefaultQuota).
	NoQuotas Table = "none"
	// AWSQuotas: AWS's published quotas (DefaultQuota).
	AWSQuotas Table = "aws"
)

// Config configures a Limiter.
type Config struct {
	Region string // selects the default symmetric tier of AWSQuotas
	// Defaults is the table of default quotas: NoQuotas (also "") or
	// AWSQuotas.
	Defaults Table
	// Quotas override the defaults for every account (family → requests
	// per second). A quota of 0 means no limit.
	Quotas map[string]float64
	// Account returns one account's overrides (from the principals file);
	// they win over Quotas. Nil means none.
	Account func(account string) map[string]float64
	// Fair, if set, shares the instance fairly under load (Fair); nil
	// means requests are limited by quotas only.
	Fair *FairConfig
	Now  func() time.Time // default time.Now
}

// Limiter holds one token bucket per account and family, created on first
// use. The bucket map is sharded by an xxhash of the key so that requests
// of different accounts and families rarely meet on a lock.
type Limiter struct {
	cfg    Config
	shards [shardCount]shard
	fair   *Fair

	refMu    sync.Mutex
	refusals map[bucketKey]*Summary // refused since the last Flush
}

const shardCount = 64

type shard struct {
	mu      sync.RWMutex
	buckets map[bucketKey]*bucket
}

type bucketKey struct{ account, family string }

type bucket struct {
	mu     sync.Mutex
	rate   float64 // tokens per second; 0 = unlimited
	burst  float64
	tokens float64
	last   int64 // unix nanoseconds of the last refill
}

// New returns a Limiter.
func New(cfg Config) *Limiter {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &Limiter{cfg: cfg, refusals: map[bucketKey]*Summary{}}
	for i := range l.shards {
		l.shards[i].buckets = map[bucketKey]*bucket{}
	}
	if cfg.Fair != nil {
		fc := *cfg.Fair
		if fc.Now == nil {
			fc.Now = cfg.Now
		}
		l.fair = NewFair(fc)
	}
	return l
}

// Fair returns the fair sharing controller, or nil without one.
func (l *Limiter) Fair() *Fair { return l.fair }

// Admit decides whether a request may run: first against its account's
// quota for family, where one applies, then, with fair sharing, by its
// turn (which it may wait for; see Fair). cost is the request's estimated
// cost (CostOf). It returns release, to be called once the request is
// answered, or the family that refused it (Overload for fair sharing); a
// refusal is noted for Flush.
func (l *Limiter) Admit(account, family string, cost int64, r Request) (release func(), refused string) {
	if !l.Allow(account, family) {
		l.Refused(account, family, r)
		return nil, family
	}
	if l.fair == nil {
		return noRelease, ""
	}
	release, ok := l.fair.Admit(account, r.PrincipalARN, cost)
	if !ok {
		l.Refused(account, Overload, r)
		return nil, Overload
	}
	return release, ""
}

func noRelease() {}

// Quota is the quota of family for account, in requests per second (0: no
// limit).
func (l *Limiter) Quota(account, family string) float64 {
	if l.cfg.Account != nil {
		if q, ok := l.cfg.Account(account)[family]; ok {
			return q
		}
	}
	if q, ok := l.cfg.Quotas[family]; ok {
		return q
	}
	if family == Overload {
		return 0
	}
	if l.cfg.Defaults == AWSQuotas || family == Audit {
		return DefaultQuota(l.cfg.Region, family)
	}
	return 0
}

// Allow takes a token from the account's bucket for family and reports
// whether the request may proceed.
func (l *Limiter) Allow(account, family string) bool {
	b := l.bucket(account, family)
	if b.rate <= 0 {
		return true
	}
	now := l.cfg.Now().UnixNano()
	b.mu.Lock()
	defer b.mu.Unlock()
	if elapsed := now - b.last; elapsed > 0 {
		b.tokens = min(b.burst, b.tokens+float64(elapsed)*b.rate/1e9)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *Limiter) bucket(account, family string) *bucket {
	var d xxhash.Digest
	d.Reset()
	_, _ = d.WriteString(account)
	_, _ = d.WriteString(family)
	s := &l.shards[d.Sum64()%shardCount]
	k := bucketKey{account, family}
	s.mu.RLock()
	b := s.buckets[k]
	s.mu.RUnlock()
	if b != nil {
		return b
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if b = s.buckets[k]; b == nil {
		rate := l.Quota(account, family)
		burst := max(rate, 1) // one second's worth; a sub-1/s quota still admits one request
		b = &bucket{rate: rate, burst: burst, tokens: burst, last: l.cfg.Now().UnixNano()}
		s.buckets[k] = b
	}
	return b
}
