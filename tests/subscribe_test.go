package tests

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/nats-io/nats.go"

	"github.com/keyledger/keyledger/ledger/event"
)

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	id    int64
	name  string
	event *event.Event
}

// openSSE connects to /audit/events as user and returns a reader of events.
func openSSE(t *testing.T, in *instance, user, query string, lastID int64) (func() (sseEvent, bool), func()) {
	t.Helper()
	next, stop, _ := openLiveSSE(t, in, user, query, lastID)
	return next, stop
}

// openLiveSSE is openSSE that also says when the stream went live: live is
// closed once next has read the server's ": live" comment, which it sends
// after the history, once it is subscribed to new events.
func openLiveSSE(t *testing.T, in *instance, user, query string, lastID int64) (func() (sseEvent, bool), func(), <-chan struct{}) {
	t.Helper()
	live := make(chan struct{})
	var liveOnce sync.Once
	path := "/audit/events" + query
	req, _ := http.NewRequest("GET", in.endpoint+path, nil)
	if lastID >= 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(lastID, 10))
	}
	signRequestPath(req, user, path, time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		t.Fatalf("SSE status %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	next := func() (sseEvent, bool) {
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == ": live":
				liveOnce.Do(func() { close(live) })
			case strings.HasPrefix(line, "id: "):
				ev.id, _ = strconv.ParseInt(line[4:], 10, 64)
			case strings.HasPrefix(line, "event: "):
				ev.name = line[7:]
			case strings.HasPrefix(line, "data: "):
				e, err := event.Decode([]byte(line[6:]))
				if err != nil {
					t.Errorf("undecodable event: %v", err)
					return ev, false
				}
				ev.event = e
			case line == "" && ev.event != nil:
				return ev, true
			}
		}
		return ev, false
	}
	return next, func() { resp.Body.Close() }, live
}

func TestSSESubscriptionAndResume(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	k := in.createKey("watched")
	next, stop, live := openLiveSSE(t, in, "admin", "?event=Encrypt&key="+k, -1)
	got := make(chan sseEvent, 100)
	go func() {
		for {
			ev, ok := next()
			if !ok {
				close(got)
				return
			}
			got <- ev
		}
	}()
	select {
	case <-live:
	case <-time.After(10 * time.Second):
		t.Fatal("the event stream did not go live")
	}
	for i := 0; i < 10; i++ {
		in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x")})
		in.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &k}) // filtered out
	}
	var seen []sseEvent
	for len(seen) < 5 {
		select {
		case ev := <-got:
			if ev.name != "Encrypt" || ev.event.KeyID != k {
				t.Fatalf("unexpected event %+v", ev)
			}
			// Its id is its position in the ledger.
			if r := in.records()[ev.id]; r.Event.Chain != ev.event.Chain || r.Event.Index != ev.event.Index {
				t.Fatalf("event %+v is not the ledger's event at position %d", ev, ev.id)
			}
			if len(seen) > 0 && ev.id <= seen[len(seen)-1].id {
				t.Fatal("events out of order")
			}
			seen = append(seen, ev)
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d events arrived", len(seen))
		}
	}
	stop() // disconnect after five
	for i := 0; i < 5; i++ {
		in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("y")})
	}
	// Resume after the fifth: exactly the remaining ten, in order, no gaps or duplicates.
	var want []int64
	for _, r := range in.records() {
		if r.Event.Operation == "Encrypt" && r.Event.KeyID == k && int64(r.Pos) > seen[4].id {
			want = append(want, int64(r.Pos))
		}
	}
	next2, stop2 := openSSE(t, in, "admin", "?event=Encrypt&key="+k, seen[4].id)
	defer stop2()
	for i, w := range want {
		ev, ok := next2()
		if !ok || ev.id != w {
			t.Fatalf("resumed event %d: got %d (ok=%v), want %d", i, ev.id, ok, w)
		}
	}
	if len(want) != 10 {
		t.Fatalf("%d events to resume, want 10", len(want))
	}
}

func TestSSEPermissions(t *testing.T) {
	in := start(t)
	req, _ := http.NewRequest("GET", in.endpoint+"/audit/events", nil)
	signRequestPath(req, "alice", "/audit/events", time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 || resp.Header.Get("X-Amzn-ErrorType") != "AccessDeniedException" {
		t.Fatalf("alice subscribed: %d %s", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"))
	}
}

// slowSubscriberBound is how long one Encrypt may take while subscribers
// stall: far above any real latency (milliseconds, even under -race on two
// shared cores), far below forever.
const slowSubscriberBound = 10 * time.Second

// TestSlowSubscriberDoesNotBlock: subscribers that never read do not slow
// or block requests.
func TestSlowSubscriberDoesNotBlock(t *testing.T) {
	t.Parallel() // its own servers and directories: runs beside the others
	in := start(t)
	ctx := context.Background()
	k := in.createKey("busy")
	for i := 0; i < 3; i++ {
		_, stop := openSSE(t, in, "admin", "", -1) // never read
		defer stop()
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 400; i++ {
				// A generous bound, not a benchmark: a request that waited on
				// a blocked subscriber would wait forever.
				rctx, cancel := context.WithTimeout(ctx, slowSubscriberBound)
				start := time.Now()
				_, err := in.kms.Encrypt(rctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x")})
				cancel()
				if took := time.Since(start); err != nil || took >= slowSubscriberBound {
					errs <- fmt.Errorf("Encrypt %d took %s beside stalled subscribers: %v", i, took, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestNATSFeed: a NATS subscriber filters by account, key and event name
// and gets events live; `keyledger audit tail` prints history and live.
func TestNATSFeed(t *testing.T) {
	port := freePort(t)
	startNATS(t, t.TempDir(), port)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	in := start(t, withNATS(url))
	ctx := context.Background()
	k := in.createKey("feed")
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	msgs := make(chan *nats.Msg, 100)
	sub, err := nc.ChanSubscribe("keyledger.audit."+testAccount+"."+k+".Encrypt", msgs)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	nc.Flush()
	for i := 0; i < 3; i++ {
		in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x")})
		in.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &k})
	}
	for i := 0; i < 3; i++ {
		select {
		case m := <-msgs:
			e, err := event.Decode(m.Data)
			pos, perr := strconv.ParseUint(m.Header.Get("Keyledger-Index"), 10, 64)
			if err != nil || perr != nil || e.Operation != "Encrypt" {
				t.Fatalf("feed message: %v %v %+v", err, perr, e)
			}
			// The header is the event's position in the ledger.
			if r := in.records()[pos]; r.Pos != pos || event.Of(m.Data) != event.Of(r.Raw) {
				t.Fatal("the feed's bytes differ from the ledger's at the position it names")
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d feed messages", i)
		}
	}
	// audit tail: three Encrypts from history, then exits after --count.
	code, out := cli(t, "audit", "tail", "--nats-url", url, "--key", k, "--event", "Encrypt", "--from", "0", "--count", "3")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.Contains(lines[0], `"op":"Encrypt"`) {
		t.Fatalf("tail: exit %d\n%s", code, out)
	}
}
