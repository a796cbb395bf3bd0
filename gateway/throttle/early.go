package throttle

import (
	"context"
	"sync"
)

// An admitted request holds its share of the instance until it is
// answered — but most of an audited request's time is the wait for its
// ledger commit (a group commit and an fsync), which costs the instance
// nothing and is what group commit needs many requests in flight for.
// Holding shares through that wait made the shares measure commit
// latency, not work: with few shares a busy account starved its own
// batches, with many a noisy one filled the CPU before anyone else's
// request. So the service gives its share back when its work is done and
// only the commit is left (ReleaseEarly, called before the ledger append);
// the handler's own release then does nothing.

type earlyKey struct{}

// WithRelease returns ctx carrying release, made safe to call twice, and
// that release: the handler defers it, the service may call it sooner
// through ReleaseEarly.
func WithRelease(ctx context.Context, release func()) (context.Context, func()) {
	once := sync.OnceFunc(release)
	return context.WithValue(ctx, earlyKey{}, once), once
}

// ReleaseEarly gives back the share of the request ctx carries, if any:
// its work is done and only its ledger commit is left.
func ReleaseEarly(ctx context.Context) {
	if release, ok := ctx.Value(earlyKey{}).(func()); ok {
		release()
	}
}
