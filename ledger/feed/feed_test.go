package feed_test

import (
	"testing"
	"time"

	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/feed"
)

func TestSubjects(t *testing.T) {
	ev := &event.Event{Account: "111122223333", KeyID: "k1", Operation: "Decrypt"}
	for _, tc := range []struct {
		stream, subject, filter string
	}{
		{"", "keyledger.audit.111122223333.k1.Decrypt", "keyledger.audit.*.k1.*"},
		{"KEYLEDGER", "keyledger.audit.111122223333.k1.Decrypt", "keyledger.audit.*.k1.*"},
		{"OTHER", "keyledger.audit.OTHER.111122223333.k1.Decrypt", "keyledger.audit.OTHER.*.k1.*"},
	} {
		f := feed.New(nil, tc.stream)
		if got := f.Subject(ev); got != tc.subject {
			t.Errorf("stream %q: Subject = %q, want %q", tc.stream, got, tc.subject)
		}
		if got := f.Filter("", "k1", ""); got != tc.filter {
			t.Errorf("stream %q: Filter = %q, want %q", tc.stream, got, tc.filter)
		}
	}
	if got := feed.New(nil, "").Subject(&event.Event{Operation: "CreateKey"}); got != "keyledger.audit._._.CreateKey" {
		t.Errorf("no account or key: %q, want keyledger.audit._._.CreateKey", got)
	}
}

// A subscriber gets the exact stored bytes and the index of every event
// its filter selects, and nothing else.
func TestPublishReachesMatchingSubscribers(t *testing.T) {
	srv, err := embedded.Start(embedded.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	f := feed.New(nc, "")
	type got struct {
		index uint64
		raw   string
	}
	ch := make(chan got, 8)
	sub, err := f.Subscribe(f.Filter("111122223333", "", "Encrypt"), func(index uint64, raw []byte) {
		ch <- got{index, string(raw)}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	recs := []event.Record{
		{Pos: 7, Event: &event.Event{Index: 7, Account: "111122223333", KeyID: "k", Operation: "Decrypt"}, Raw: []byte(`{"i":7}`)},
		{Pos: 8, Event: &event.Event{Index: 8, Account: "111122223333", KeyID: "k", Operation: "Encrypt"}, Raw: []byte(`{"i":8}`)},
		{Pos: 9, Event: &event.Event{Index: 9, Account: "444455556666", KeyID: "k", Operation: "Encrypt"}, Raw: []byte(`{"i":9}`)},
		{Pos: 10, Event: &event.Event{Index: 10, Account: "111122223333", Operation: "Encrypt"}, Raw: []byte(`{"i":10}`)},
	}
	if err := f.Publish(recs); err != nil {
		t.Fatal(err)
	}
	// One connection delivers in order: what the filter skips would
	// arrive between the two it selects.
	for _, want := range []got{{8, `{"i":8}`}, {10, `{"i":10}`}} {
		select {
		case g := <-ch:
			if g != want {
				t.Fatalf("got index %d %s, want %d %s", g.index, g.raw, want.index, want.raw)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d was not delivered", want.index)
		}
	}
}

// With OnlyHeard and the embedded server's interest, an event no one
// subscribes to is not sent at all, and one someone subscribes to is.
func TestOnlyHeardSkipsUnheardEvents(t *testing.T) {
	srv, err := embedded.Start(embedded.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	f := feed.New(nc, "")
	f.OnlyHeard(srv.HasInterest)
	recs := []event.Record{
		{Pos: 1, Event: &event.Event{Account: "111122223333", KeyID: "k", Operation: "Encrypt"}, Raw: []byte(`{"i":1}`)},
		{Pos: 2, Event: &event.Event{Account: "111122223333", KeyID: "k", Operation: "Decrypt"}, Raw: []byte(`{"i":2}`)},
	}
	before := nc.Stats().OutMsgs
	if err := f.Publish(recs); err != nil {
		t.Fatal(err)
	}
	if sent := nc.Stats().OutMsgs - before; sent != 0 {
		t.Fatalf("%d events sent with no subscriber", sent)
	}
	listener, err := srv.Connect("listener")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(listener.Close)
	sub, err := listener.SubscribeSync(f.Filter("", "", "Decrypt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := listener.Flush(); err != nil {
		t.Fatal(err)
	}
	before = nc.Stats().OutMsgs
	if err := f.Publish(recs); err != nil {
		t.Fatal(err)
	}
	if sent := nc.Stats().OutMsgs - before; sent != 1 {
		t.Fatalf("%d events sent for one subscriber of one of them, want 1", sent)
	}
	if m, err := sub.NextMsg(5 * time.Second); err != nil || string(m.Data) != `{"i":2}` || m.Header.Get("Keyledger-Index") != "2" {
		t.Fatalf("the heard event: %v %v", m, err)
	}
}
