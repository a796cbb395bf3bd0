package feed_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/feed"
)

// TestOnlyHeardReachesEveryKindOfSubscriber: with OnlyHeard and the
// embedded server's interest, the default auditor and a named one (each
// in its own account, connected over the listener), a queue group (named
// under its auditor's FeedQueuePrefix, as it must be) and an in-process
// subscriber each get the event they subscribed for, and one who
// subscribes then waits gets the very next event published.
func TestOnlyHeardReachesEveryKindOfSubscriber(t *testing.T) {
	srv, err := embedded.Start(embedded.Options{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Auditors: []string{"erin"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect("keyledger")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	f := feed.New(nc, "")
	f.OnlyHeard(srv.HasInterest)

	var subs []*nats.Subscription
	for _, name := range []string{"", "erin"} {
		auth, err := nats.NkeyOptionFromSeed(srv.AuditorSeedFile(name))
		if err != nil {
			t.Fatal(err)
		}
		anc, err := nats.Connect(srv.ClientURL(), auth)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(anc.Close)
		sub, err := anc.SubscribeSync(f.Filter("111122223333", "", "Encrypt"))
		if err != nil {
			t.Fatal(err)
		}
		q, err := anc.QueueSubscribeSync(f.Filter("", "k2", ""), embedded.FeedQueuePrefix(name)+"workers")
		if err != nil {
			t.Fatal(err)
		}
		if err := anc.Flush(); err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub, q)
	}
	local, err := srv.Connect("local")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(local.Close)
	lq, err := local.QueueSubscribeSync(f.Filter("", "", "Sign"), "q")
	if err != nil {
		t.Fatal(err)
	}
	if err := local.Flush(); err != nil {
		t.Fatal(err)
	}
	subs = append(subs, lq)
	recs := []event.Record{
		{Pos: 1, Event: &event.Event{Account: "111122223333", KeyID: "k1", Operation: "Encrypt"}, Raw: []byte(`{"i":1}`)},
		{Pos: 2, Event: &event.Event{Account: "444455556666", KeyID: "k2", Operation: "Decrypt"}, Raw: []byte(`{"i":2}`)},
		{Pos: 3, Event: &event.Event{Account: "444455556666", KeyID: "k3", Operation: "Sign"}, Raw: []byte(`{"i":3}`)},
	}
	if err := f.Publish(recs); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{`{"i":1}`, `{"i":2}`, `{"i":1}`, `{"i":2}`, `{"i":3}`} {
		if m, err := subs[i].NextMsg(5 * time.Second); err != nil || string(m.Data) != want {
			t.Fatalf("subscriber %d (%s): %v, %v; want %s", i, subs[i].Subject, m, err, want)
		}
	}

	// Subscribe, then expect the next event, many times over: an
	// auditor's subscription is heard as soon as its server has it.
	auth, _ := nats.NkeyOptionFromSeed(srv.AuditSeedFile())
	anc, err := nats.Connect(srv.ClientURL(), auth)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(anc.Close)
	for i := range 200 {
		key := fmt.Sprint("fresh", i)
		sub, err := anc.SubscribeSync(f.Filter("", key, ""))
		if err != nil {
			t.Fatal(err)
		}
		if err := anc.Flush(); err != nil {
			t.Fatal(err)
		}
		raw := fmt.Sprintf(`{"i":%d}`, 100+i)
		if err := f.Publish([]event.Record{{Pos: uint64(100 + i), Event: &event.Event{Account: "111122223333", KeyID: key, Operation: "Decrypt"}, Raw: []byte(raw)}}); err != nil {
			t.Fatal(err)
		}
		if m, err := sub.NextMsg(5 * time.Second); err != nil || string(m.Data) != raw {
			t.Fatalf("subscribed for %s, then: %v, %v", key, m, err)
		}
		sub.Unsubscribe()
	}
}
