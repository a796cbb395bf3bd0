package tests

import (
	"context"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/chain"
)

// contentionDuration is how long TestTwoInstancesUnderContention writes:
// KEYLEDGER_TEST_CONTENTION (a Go duration; the scenario is 60s),
// 15s by default to keep make test short.
func contentionDuration(t *testing.T) time.Duration {
	v := os.Getenv("KEYLEDGER_TEST_CONTENTION")
	if v == "" {
		return 15 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("KEYLEDGER_TEST_CONTENTION: %v", err)
	}
	return d
}

// TestTwoInstancesUnderContention: two instances on one NATS server both
// write as fast as they can, so appends conflict all the time. The ledger
// stream's consumer count stays small (reading back after a conflict and
// following the other instance leave no consumers behind), neither instance
// gets stuck: each keeps answering writes and reads, catches up with the
// other, and the chain verifies.
func TestTwoInstancesUnderContention(t *testing.T) {
	port := freePort(t)
	startNATS(t, t.TempDir(), port)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	a := start(t, withNATS(url))
	b := start(t, withNATS(url))
	b.root = a.root // one deployment, one root key
	b.restart()
	ctx := context.Background()
	key := a.createKey("contended")

	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	stream, err := js.Stream(ctx, "KEYLEDGER")
	if err != nil {
		t.Fatal(err)
	}

	// Per instance: four writers and one reader, all the time.
	type tally struct{ writes, writesFailed, reads, readsFailed atomic.Int64 }
	tallies := map[string]*tally{"a": {}, "b": {}}
	instances := map[string]*instance{"a": a, "b": b}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	loop := func(op func() error, ok, failed *atomic.Int64, pause time.Duration) {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(pause):
			}
			if op() != nil {
				failed.Add(1)
			} else {
				ok.Add(1)
			}
		}
	}
	for name, in := range instances {
		tl := tallies[name]
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go loop(func() error {
				_, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &key, Plaintext: []byte("x")})
				return err
			}, &tl.writes, &tl.writesFailed, 0)
		}
		wg.Add(1)
		go loop(func() error {
			_, err := in.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &key})
			return err
		}, &tl.reads, &tl.readsFailed, 50*time.Millisecond)
	}
	stopAll := func() {
		select {
		case <-stop:
		default:
			close(stop)
			wg.Wait()
		}
	}
	defer stopAll()

	// Every window each instance must have answered writes and reads (an
	// append that loses the race is refused, and SDKs retry), and the
	// stream's consumers must stay few.
	const window = 5 * time.Second
	maxConsumers := 0
	last := map[string][2]int64{}
	deadline := time.Now().Add(contentionDuration(t))
	for time.Now().Before(deadline) {
		for end := time.Now().Add(window); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
			info, err := stream.Info(ctx)
			if err != nil {
				t.Fatalf("stream info: %v", err)
			}
			maxConsumers = max(maxConsumers, info.State.Consumers)
		}
		for name, in := range instances {
			tl := tallies[name]
			now := [2]int64{tl.writes.Load(), tl.reads.Load()}
			if now[0] == last[name][0] || now[1] == last[name][1] {
				stopAll()
				t.Fatalf("instance %s is stuck: in %s %d writes (%d refused) and %d DescribeKey (%d refused) answered; log:\n%s",
					name, window, now[0]-last[name][0], tl.writesFailed.Load(), now[1]-last[name][1], tl.readsFailed.Load(),
					tail(in.logs.String(), 3000))
			}
			last[name] = now
		}
	}
	stopAll()
	for name, tl := range tallies {
		t.Logf("instance %s: %d writes answered, %d refused; %d DescribeKey answered, %d refused",
			name, tl.writes.Load(), tl.writesFailed.Load(), tl.reads.Load(), tl.readsFailed.Load())
	}
	t.Logf("most consumers on the ledger stream at once: %d", maxConsumers)
	if maxConsumers > 4 {
		t.Errorf("the ledger stream had %d consumers at once; readers must not leave them behind", maxConsumers)
	}

	// Both catch up with each other and agree on one valid chain.
	for end := time.Now().Add(10 * time.Second); a.node.Ledger.Head() != b.node.Ledger.Head() && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
	}
	if a.node.Ledger.Head() != b.node.Ledger.Head() {
		t.Fatalf("instances disagree: %+v vs %+v", a.node.Ledger.Head(), b.node.Ledger.Head())
	}
	r, err := chain.Audit(ctx, a.node.Ledger)
	if err != nil || len(r.Quarantined) > 0 {
		t.Fatalf("chain: %v, %d quarantined", err, len(r.Quarantined))
	}
	if a.node.Ledger.Quarantined()+b.node.Ledger.Quarantined() > 0 {
		t.Fatalf("an instance quarantined its peer's messages")
	}
}

// tail is the end of s, at most n bytes.
func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
