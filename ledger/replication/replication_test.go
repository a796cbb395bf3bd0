package replication

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/keyledger/keyledger/ledger/embedded"
)

func connect(t *testing.T) *nats.Conn {
	t.Helper()
	srv, err := embedded.Start(embedded.Options{DataDir: filepath.Join(t.TempDir(), "jetstream"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestLinkDeliversInOrderAndErases: what one region publishes for another
// reaches that region's inbox through the stream source, in order, a
// newer message of the same subject supersedes an undelivered older one,
// a message handled without error is erased from the inbox, and one
// refused comes again.
func TestLinkDeliversInOrderAndErases(t *testing.T) {
	ctx := context.Background()
	nc := connect(t)
	open := func(region, peer string) *Link {
		l, err := Open(ctx, nc, Config{Region: region, Outbox: region + "_OUT", Inbox: region + "_IN",
			Peers: []Peer{{Region: peer, Outbox: peer + "_OUT"}}})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	a, b := open("us-east-1", "eu-west-1"), open("eu-west-1", "us-east-1")
	for _, d := range []string{"one", "two"} {
		if err := a.Publish(ctx, "eu-west-1", "sync", "mrk-1", []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Publish(ctx, "eu-west-1", "sync", "mrk-2", []byte("other key")); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx, "ap-south-1", "sync", "mrk-1", []byte("not for eu")); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	refused := false
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.Receive(rctx, func(_ context.Context, m Message) error {
			mu.Lock()
			defer mu.Unlock()
			if m.Key == "mrk-2" && !refused {
				refused = true
				return context.DeadlineExceeded // comes again
			}
			got = append(got, m.From+"/"+m.Kind+"/"+m.Key+"="+string(m.Data))
			return nil
		})
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("received %v", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	// "one" was superseded by "two" (an erase, then the publish, on one subject).
	want := []string{"us-east-1/sync/mrk-1=two", "us-east-1/sync/mrk-2=other key"}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("received %v, want %v", got, want)
	}
	info, err := b.inbox.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Fatalf("%d messages left in the inbox after they were handled", info.State.Msgs)
	}
	if err := a.Erase(ctx, "eu-west-1", "sync", "mrk-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.outbox.GetLastMsgForSubject(ctx, Subject("us-east-1", "eu-west-1", "sync", "mrk-1")); err == nil {
		t.Fatal("an erased outbox message is still there")
	}
}
