package embedded_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/keyledger/keyledger/ledger/embedded"
)

// TestAuditorsQueueGroupsStayApart: two auditors (each in its own account)
// may not name a queue group on the live feed outside their own prefix,
// not even the same plain name or the other's prefix, so neither takes
// events from the other; each auditor's group, named under its prefix,
// gets every event, as does a plain subscription.
//
// Without the rule, nats-server put both accounts' groups of one name into
// one group in keyledger's account: 20 events split between them.
func TestAuditorsQueueGroupsStayApart(t *testing.T) {
	srv, err := embedded.Start(embedded.Options{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Auditors: []string{"erin"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)

	type auditor struct {
		name string
		nc   *nats.Conn
		errs chan error
	}
	var auditors []*auditor
	for _, name := range []string{"", "erin"} {
		auth, err := nats.NkeyOptionFromSeed(srv.AuditorSeedFile(name))
		if err != nil {
			t.Fatal(err)
		}
		a := &auditor{name: name, errs: make(chan error, 16)}
		a.nc, err = nats.Connect(srv.ClientURL(), auth, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			a.errs <- err
		}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(a.nc.Close)
		auditors = append(auditors, a)
	}

	// Refused: a plain name (both auditors the same), the other's prefix,
	// and a bare account name without the dot.
	refused := func(a *auditor, queue string) {
		t.Helper()
		sub, err := a.nc.QueueSubscribeSync("keyledger.audit.>", queue)
		if err != nil {
			t.Fatal(err)
		}
		_ = a.nc.Flush()
		select {
		case err := <-a.errs:
			if !strings.Contains(err.Error(), "Permissions Violation") {
				t.Fatalf("auditor %q, queue %q: %v; want a permissions violation", a.name, queue, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("auditor %q: queue group %q on the feed was accepted", a.name, queue)
		}
		_ = sub.Unsubscribe()
	}
	refused(auditors[0], "workers")
	refused(auditors[1], "workers")
	refused(auditors[1], embedded.FeedQueuePrefix("")+"workers")
	refused(auditors[0], embedded.FeedQueuePrefix("erin")+"workers")
	refused(auditors[0], strings.TrimSuffix(embedded.FeedQueuePrefix(""), "."))

	// Accepted: each under its own prefix, with the same suffix; two
	// members in the default auditor's group share its events.
	var groups [][]*nats.Subscription
	for _, a := range auditors {
		var g []*nats.Subscription
		members := 1
		if a.name == "" {
			members = 2
		}
		for range members {
			sub, err := a.nc.QueueSubscribeSync("keyledger.audit.>", embedded.FeedQueuePrefix(a.name)+"workers")
			if err != nil {
				t.Fatal(err)
			}
			g = append(g, sub)
		}
		plain, err := a.nc.SubscribeSync("keyledger.audit.>")
		if err != nil {
			t.Fatal(err)
		}
		g = append(g, plain)
		if err := a.nc.Flush(); err != nil {
			t.Fatal(err)
		}
		groups = append(groups, g)
	}
	for _, a := range auditors {
		select {
		case err := <-a.errs:
			t.Fatalf("auditor %q: %v", a.name, err)
		default:
		}
	}

	nc, err := srv.Connect("keyledger")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	const events = 20
	for i := range events {
		if err := nc.Publish(fmt.Sprintf("keyledger.audit.111122223333.k%d.Encrypt", i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	count := func(subs ...*nats.Subscription) int {
		var mu sync.Mutex
		n := 0
		var wg sync.WaitGroup
		for _, s := range subs {
			wg.Go(func() {
				for {
					if _, err := s.NextMsg(500 * time.Millisecond); err != nil {
						return
					}
					mu.Lock()
					n++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return n
	}
	for i, g := range groups {
		queue, plain := g[:len(g)-1], g[len(g)-1]
		if n := count(queue...); n != events {
			t.Errorf("auditor %q: its queue group got %d of %d events", auditors[i].name, n, events)
		}
		if n := count(plain); n != events {
			t.Errorf("auditor %q: its plain subscription got %d of %d events", auditors[i].name, n, events)
		}
	}
}
