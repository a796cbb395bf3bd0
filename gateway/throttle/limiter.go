// Package throttle limits request rates per account and quota family, as
// AWS KMS does: token buckets refilled at the family's quota (requests per
// second), holding at most one second's worth. AWS's published quotas are
// the defaults; operators raise or lower them for every account or per
// account. A Limiter is safe for concurrent use and holds no secret.
package throttle

import (
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Config configures a Limiter.
type Config struct {
	Region string // selects the default symmetric tier
	// Quotas override the defaults for every account (family → requests
	// per second). A quota of 0 means no limit.
	Quotas map[string]float64
	// Account returns one account's overrides (from the principals file);
	// they win over Quotas. Nil means none.
	Account func(account string) map[string]float64
	Now     func() time.Time // default time.Now
}

// Limiter holds one token bucket per account and family, created on first
// use. The bucket map is sharded by an xxhash of the key so that requests
// of different accounts and families rarely meet on a lock.
type Limiter struct {
	cfg    Config
	shards [shardCount]shard

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
	return l
}

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
	return DefaultQuota(l.cfg.Region, family)
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
