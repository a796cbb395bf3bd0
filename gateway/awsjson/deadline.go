package awsjson

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// deadlineGrain is how far apart two requests may start and still share
// one request context (requestDeadlines).
const deadlineGrain = 100 * time.Millisecond

// requestDeadlines hands each request a context that ends between
// requestTimeout and requestTimeout+deadlineGrain after the request
// started. Requests that start within one grain share a context and its
// one timer: context.WithTimeout made a timer per request, started and
// stopped again on the hot path, for a bound that is coarse anyway. No
// request cancels its context early, so none can end another's.
type requestDeadlines struct {
	cur atomic.Pointer[sharedDeadline]
	mu  sync.Mutex // held to make the next shared context
}

type sharedDeadline struct {
	ctx    context.Context
	cancel context.CancelFunc // never called: the context ends at its deadline
	until  time.Time          // requests that start before this share ctx
}

// context returns the context of a request that started at start.
func (d *requestDeadlines) context(start time.Time) context.Context {
	if s := d.cur.Load(); s != nil && start.Before(s.until) {
		return s.ctx
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := d.cur.Load(); s != nil && start.Before(s.until) {
		return s.ctx
	}
	s := &sharedDeadline{until: start.Add(deadlineGrain)}
	s.ctx, s.cancel = context.WithDeadline(context.Background(), s.until.Add(requestTimeout))
	d.cur.Store(s)
	return s.ctx
}
