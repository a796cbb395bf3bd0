package ledger

import (
	"context"
	"testing"
	"time"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/ledger/writer"
)

// Contention notices: an instance that lost on some chains makes the
// others, not itself, hold their next change on those chains, and only
// those; a malformed or out-of-range notice changes nothing.
func TestContentionNotices(t *testing.T) {
	srv, err := embedded.Start(embedded.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	start := func() *Ledger {
		nc, err := srv.Connect("test")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		l, head := openSigned(t, nc, writer.Generate())
		l.Start(head)
		t.Cleanup(l.Close)
		return l
	}
	a, b := start(), start()
	// held: a notice ever held chain p (the hold itself lasts only
	// milliseconds: a loaded machine could miss it).
	held := func(l *Ledger, p int) bool {
		l.contend.mu.Lock()
		defer l.contend.mu.Unlock()
		return !l.contend.until[p].IsZero()
	}
	// Garbage first: none of it may hold anything.
	nc := b.js.Conn()
	for _, junk := range []string{"", "x", "someone", "someone -1,64,999999999999,abc", "someone  "} {
		if err := nc.Publish(b.contendedSubject(), []byte(junk)); err != nil {
			t.Fatal(err)
		}
	}
	b.lostOn([]int{3, 17})
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !held(a, 3) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Microsecond)
	}
	if !held(a, 3) || !held(a, 17) {
		t.Fatal("the other instance does not hold its changes on the chains b lost on")
	}
	for p := range chain.Partitions {
		if p != 3 && p != 17 && held(a, p) {
			t.Fatalf("chain %d is held though nobody lost on it", p)
		}
		if held(b, p) {
			t.Fatalf("b holds its own changes on chain %d after its own notice", p)
		}
	}
	// The hold ends by itself; yieldTo returns once it has.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	a.yieldTo(ctx, []int{3})
	a.contend.mu.Lock()
	still := time.Now().Before(a.contend.until[3])
	a.contend.mu.Unlock()
	if still || ctx.Err() != nil {
		t.Fatal("yieldTo returned while the chain was still held, or waited past the pause")
	}
}
