package lease_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/ledger/lease"
)

func openBucket(t *testing.T, srv *embedded.Server, ttl time.Duration) *lease.Bucket {
	t.Helper()
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	b, err := lease.Open(context.Background(), nc, "", ttl, 1)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func startServer(t *testing.T) *embedded.Server {
	t.Helper()
	srv, err := embedded.Start(embedded.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// TestOneHolderAtATime: while a holds the lease, b cannot take it; a
// released lease is b's at once, under a larger token; a cannot renew it
// then.
func TestOneHolderAtATime(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	a, b := openBucket(t, srv, time.Minute), openBucket(t, srv, time.Minute)
	la, err := a.Acquire(ctx, "scheduler", "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Acquire(ctx, "scheduler", "b"); !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("second Acquire: %v, want ErrHeld", err)
	}
	if err := la.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if h, _, err := b.Holder(ctx, "scheduler"); err != nil || h != "a" {
		t.Fatalf("Holder = %q, %v", h, err)
	}
	if err := la.Release(ctx); err != nil {
		t.Fatal(err)
	}
	lb, err := b.Acquire(ctx, "scheduler", "b")
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	if lb.Token() <= la.Token() {
		t.Errorf("token after takeover %d, not above %d", lb.Token(), la.Token())
	}
	if err := la.Renew(ctx); !errors.Is(err, lease.ErrLost) {
		t.Errorf("old holder's Renew: %v, want ErrLost", err)
	}
	if la.Remaining() > 0 {
		t.Error("a lost lease still counts as valid")
	}
	// Releasing a lost lease leaves the new holder's alone.
	if err := la.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if h, _, _ := b.Holder(ctx, "scheduler"); h != "b" {
		t.Errorf("holder after the old holder's Release = %q, want b", h)
	}
}

// TestLeaseExpires: a holder that stops renewing (killed, paused) loses
// the lease to the server's TTL; whoever waits gets it, and the old holder
// cannot renew. A holder that renews keeps it past many TTLs.
func TestLeaseExpires(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	const ttl = 500 * time.Millisecond
	a, b := openBucket(t, srv, ttl), openBucket(t, srv, ttl)
	la, err := a.Acquire(ctx, "scheduler", "a")
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(4 * ttl); time.Now().Before(end); time.Sleep(ttl / 5) {
		if err := la.Renew(ctx); err != nil {
			t.Fatalf("Renew: %v", err)
		}
		if _, err := b.Acquire(ctx, "scheduler", "b"); !errors.Is(err, lease.ErrHeld) {
			t.Fatalf("Acquire of a renewed lease: %v, want ErrHeld", err)
		}
	}
	// a stops renewing.
	var lb *lease.Lease
	for deadline := time.Now().Add(20 * ttl); lb == nil; time.Sleep(ttl / 10) {
		if time.Now().After(deadline) {
			t.Fatal("the lease did not expire")
		}
		lb, err = b.Acquire(ctx, "scheduler", "b")
		if err != nil && !errors.Is(err, lease.ErrHeld) {
			t.Fatal(err)
		}
	}
	if err := la.Renew(ctx); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("expired holder's Renew: %v, want ErrLost", err)
	}
	if lb.Token() <= la.Token() || lb.Remaining() <= 0 {
		t.Errorf("new lease: token %d (old %d), remaining %v", lb.Token(), la.Token(), lb.Remaining())
	}
}

// TestHolderTakesItsOwnLeaseBack: a lease that names the holder (its run
// before was killed and never released it) is taken back at once under a
// new token; another holder still waits for it to expire, and the old
// run's lease can no longer be renewed.
func TestHolderTakesItsOwnLeaseBack(t *testing.T) {
	srv := startServer(t)
	b := openBucket(t, srv, time.Hour)
	ctx := context.Background()
	old, err := b.Acquire(ctx, "scheduler", "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Acquire(ctx, "scheduler", "b"); !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("another holder: %v, want ErrHeld", err)
	}
	again, err := b.Acquire(ctx, "scheduler", "a")
	if err != nil {
		t.Fatalf("the same holder again: %v", err)
	}
	if again.Token() <= old.Token() {
		t.Fatalf("token %d after %d: a new acquisition needs a new token", again.Token(), old.Token())
	}
	if err := old.Renew(ctx); !errors.Is(err, lease.ErrLost) {
		t.Fatalf("the earlier run renewed: %v, want ErrLost", err)
	}
}
