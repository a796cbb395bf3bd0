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

	type tally struct{ ok, failed, reads atomic.Int64 }
	tallies := map[string]*tally{"a": {}, "b": {}}
	instances := map[string]*instance{"a": a, "b": b}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for name, in := range instances {
		tl := tallies[name]
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &key, Plaintext: []byte("x")}); err != nil {
						tl.failed.Add(1)
					} else {
						tl.ok.Add(1)
					}
				}
			}()
		}
	}

	// Every window, each instance must have answered writes and a
	// DescribeKey (retried as an SDK would), and the stream's consumers
	// must stay few.
	const window = 3 * time.Second
	maxConsumers := 0
	var lastOK = map[string]int64{}
	deadline := time.Now().Add(contentionDuration(t))
	for time.Now().Before(deadline) {
		end := time.Now().Add(window)
		for time.Now().Before(end) {
			info, err := stream.Info(ctx)
			if err != nil {
				t.Fatalf("stream info: %v", err)
			}
			maxConsumers = max(maxConsumers, info.State.Consumers)
			time.Sleep(250 * time.Millisecond)
		}
		for name, in := range instances {
			if !describes(ctx, in, key) {
				close(stop)
				wg.Wait()
				t.Fatalf("instance %s answers no DescribeKey (tally ok %d, failed %d); log:\n%s", name, tallies[name].ok.Load(), tallies[name].failed.Load(), tail(in.logs.String(), 4000))
			}
			tallies[name].reads.Add(1)
			ok := tallies[name].ok.Load()
			if ok == lastOK[name] {
				close(stop)
				wg.Wait()
				t.Fatalf("instance %s answered no write in %s (failed %d)", name, window, tallies[name].failed.Load())
			}
			lastOK[name] = ok
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("max consumers on the ledger stream: %d; a: %d ok, %d failed; b: %d ok, %d failed",
		maxConsumers, tallies["a"].ok.Load(), tallies["a"].failed.Load(), tallies["b"].ok.Load(), tallies["b"].failed.Load())
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

// describes reports whether DescribeKey succeeds within a few seconds of
// retrying, as an SDK's retries would make it (appends that lose a race to
// the other instance are refused and retried).
func describes(ctx context.Context, in *instance, key string) bool {
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if _, err := in.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &key}); err == nil {
			return true
		}
	}
	return false
}

// tail is the end of s, at most n bytes.
func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
