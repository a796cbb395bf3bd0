package ledger

import (
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
	// The hold ends by itself, and says how long it has left.
	if d := a.ContentionHold(); d > contentionPause {
		t.Fatalf("a hold of %v, longer than the pause", d)
	}
	time.Sleep(contentionPause)
	if d := a.ContentionHold(); d != 0 {
		t.Fatalf("still held %v after the pause", d)
	}
}
