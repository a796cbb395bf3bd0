package ledger

import (
	"context"
	"encoding/base64"
	"strconv"
	"testing"
	"time"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/ledger/event"
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
	start := func(w *writer.Key) *Ledger {
		nc, err := srv.Connect("test")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		l, head := openSigned(t, nc, w)
		l.Start(head)
		t.Cleanup(l.Close)
		return l
	}
	wa, wb, stranger := writer.Generate(), writer.Generate(), writer.Generate()
	a := start(wa)
	ctx := context.Background()
	for _, w := range []*writer.Key{wa, wb} {
		if _, err := a.Append(ctx, &event.Event{Time: time.Now(), Operation: "RegisterWriter",
			Body: &event.WriterRegistered{WriterID: w.ID(), PublicKey: w.PublicText(), RegisteredBy: wa.ID()}}); err != nil {
			t.Fatal(err)
		}
	}
	b := start(wb)
	c := start(stranger) // never registered: its notices hold nothing
	// held: a notice ever held chain p (the hold itself lasts only
	// milliseconds: a loaded machine could miss it).
	held := func(l *Ledger, p int) bool {
		l.contend.mu.Lock()
		defer l.contend.mu.Unlock()
		return !l.contend.until[p].IsZero()
	}
	// Garbage, a stranger's notice and forgeries first: none of them may
	// hold anything.
	nc := b.js.Conn()
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	old := strconv.FormatInt(time.Now().Add(-time.Minute).UnixMilli(), 10)
	signed := func(k *writer.Key, fields string) string {
		return fields + " " + base64.StdEncoding.EncodeToString(k.SignRaw(b.noticeBody(fields)))
	}
	for _, junk := range []string{"", "x", "someone", "someone -1,64,999999999999,abc", "someone  ",
		wb.ID() + " n " + now + " 5 1000 AAAA",                 // unsigned
		signed(stranger, stranger.ID()+" n "+now+" 5 1000"),    // not a registered writer
		signed(stranger, wb.ID()+" n "+now+" 5 1000"),          // another's name, the stranger's key
		signed(wb, wb.ID()+" n "+old+" 5 1000"),                // a minute old: a replay
		signed(wb, wb.ID()+" n "+now+" 5,64 1000"),             // a chain out of range
		signed(wb, wb.ID()+" n "+now+" 5 1000")[:60] + "x=="} { // a signature cut
		if err := nc.Publish(b.contendedSubject(), []byte(junk)); err != nil {
			t.Fatal(err)
		}
	}
	c.lostOn([]int{5}, time.Millisecond)
	if err := c.js.Conn().Flush(); err != nil { // the server has c's notice before b's
		t.Fatal(err)
	}
	b.lostOn([]int{3, 17}, time.Hour) // asks too much: held maxContentionPause
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
		if p != 3 && p != 17 && held(a, p) || held(c, p) && p != 3 && p != 17 {
			t.Fatalf("chain %d is held though nobody lost on it", p)
		}
		if held(b, p) {
			t.Fatalf("b holds its own changes on chain %d after its own notice", p)
		}
	}
	// The hold ends by itself, and says how long it has left.
	if d := a.ContentionHold(); d > maxContentionPause {
		t.Fatalf("a hold of %v, longer than the longest pause", d)
	}
	time.Sleep(maxContentionPause)
	if d := a.ContentionHold(); d != 0 {
		t.Fatalf("still held %v after the pause", d)
	}
}
