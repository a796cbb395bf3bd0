package throttle

import (
	"context"
	"testing"
)

// TestReleaseEarly: the service gives a request's share back before its
// ledger commit, once; the handler's own release afterwards gives back
// nothing more (a second release would count another request's share as
// free), and ReleaseEarly on a context without a share does nothing.
func TestReleaseEarly(t *testing.T) {
	f := NewFair(FairConfig{Slots: 4, Cores: 2})
	rel := admitNow(t, f, "a", "p", BaseCost)
	other := admitNow(t, f, "a", "p", BaseCost)
	if got := f.Stats().InService; got != 2 {
		t.Fatalf("in service %d, want 2", got)
	}
	ctx, release := WithRelease(context.Background(), rel)
	ReleaseEarly(ctx) // the work is done: only the commit is left
	if got := f.Stats().InService; got != 1 {
		t.Fatalf("after ReleaseEarly: in service %d, want 1", got)
	}
	ReleaseEarly(ctx)
	release() // the handler's deferred release
	if got := f.Stats().InService; got != 1 {
		t.Fatalf("after releasing twice more: in service %d, want 1 (the other request's)", got)
	}
	other()
	if got := f.Stats().InService; got != 0 {
		t.Fatalf("in service %d, want 0", got)
	}
	ReleaseEarly(context.Background())
}
