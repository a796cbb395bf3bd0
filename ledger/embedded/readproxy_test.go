package embedded

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/internal/directget"
)

// proxyServer starts a server with a KEYLEDGER stream of n messages of
// size bytes each.
func proxyServer(t *testing.T, opts Options, n, size int) *Server {
	t.Helper()
	dir := t.TempDir()
	opts.DataDir, opts.AuthDir, opts.Listen, opts.NoSync = filepath.Join(dir, "js"), dir, "127.0.0.1:-1", true
	srv, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect("keyledger")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "KEYLEDGER", Subjects: []string{"keyledger.events"}, AllowDirect: true}); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, size)
	for i := range n {
		copy(body, strconv.Itoa(i+1))
		if _, err := js.PublishAsync("keyledger.events", body); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	return srv
}

// batchAnswer sends a batched direct get and collects its answer: the
// messages, and the status that ended it.
func batchAnswer(t *testing.T, nc *nats.Conn, body string) (msgs int, end *nats.Msg) {
	t.Helper()
	sub, err := nc.SubscribeSync(nc.NewInbox())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest("$JS.API.DIRECT.GET.KEYLEDGER", sub.Subject, []byte(body)); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("after %d messages: %v", msgs, err)
		}
		if m.Header.Get("Status") != "" {
			return msgs, m
		}
		msgs++
	}
}

// A batched direct get above the proxy's bounds is capped: to
// directget.MaxBatch messages, and to directget.MaxBytes bytes, whatever
// the request asks; the end-of-batch status says what remains. JetStream
// itself would send all of it at once.
func TestReadProxyCapsBatches(t *testing.T) {
	srv := proxyServer(t, Options{}, directget.MaxBatch+500, 16)
	audit := auditConn(t, srv)
	n, end := batchAnswer(t, audit, `{"seq":1,"batch":2000000000,"max_bytes":9000000000000000000}`)
	if n != directget.MaxBatch || end.Header.Get("Status") != "204" || end.Header.Get("Nats-Num-Pending") != "500" {
		t.Errorf("a batch of 2e9: %d messages, then %q, want %d and 204 with 500 pending", n, end.Header, directget.MaxBatch)
	}
	// Within the bounds, as asked.
	if n, end := batchAnswer(t, audit, `{"seq":1001,"batch":10}`); n != 10 || end.Header.Get("Nats-Num-Pending") != strconv.Itoa(directget.MaxBatch+500-1010) {
		t.Errorf("a batch of 10: %d messages, then %q", n, end.Header)
	}
	// The server parses field names without regard to case; so does the proxy.
	if n, _ := batchAnswer(t, audit, `{"Seq":1,"BATCH":2000000000}`); n != directget.MaxBatch {
		t.Errorf("a batch of 2e9 spelt BATCH: %d messages", n)
	}
}

func TestReadProxyCapsBatchBytes(t *testing.T) {
	const size = 1 << 20
	srv := proxyServer(t, Options{Auditors: []string{"acme"}}, 24, size)
	n, end := batchAnswer(t, auditorConn(t, srv, "acme"), `{"seq":1,"batch":24,"max_bytes":1099511627776}`)
	// The server stops after the message that reaches the bound.
	if want := directget.MaxBytes / size; n != want || end.Header.Get("Status") != "204" {
		t.Errorf("24 MiB asked for with max_bytes 1 TiB: %d messages of 1 MiB, then %q; want %d", n, end.Header, want)
	}
}

// One reader's requests beyond what the proxy serves at once and queues
// are refused at once (429), without touching the stream; the queued ones
// are served once the reader has taken what it was sent. Here the reader
// is made to look as if it never reads (its pending bytes over the cap).
func TestReadProxyBoundsOneReadersRequests(t *testing.T) {
	var backlog atomic.Int64
	backlog.Store(proxyPendingCap)
	srv := proxyServer(t, Options{Auditors: []string{"acme"}, pending: func(account string) int {
		if account == auditAccount+"_acme" {
			return int(backlog.Load())
		}
		return 0
	}}, 8, 16)
	acme, other := auditorConn(t, srv, "acme"), auditConn(t, srv)
	const extra = 20
	sub, err := acme.SubscribeSync(acme.NewInbox())
	if err != nil {
		t.Fatal(err)
	}
	for i := range proxyInFlight + proxyQueue + extra {
		if err := acme.PublishRequest("$JS.API.DIRECT.GET.KEYLEDGER", sub.Subject, fmt.Appendf(nil, `{"seq":%d}`, i%8+1)); err != nil {
			t.Fatal(err)
		}
	}
	refused, answered := 0, 0
	for {
		m, err := sub.NextMsg(time.Second)
		if err != nil {
			break
		}
		switch {
		case m.Header.Get("Status") == "429":
			refused++
		case len(m.Data) > 0:
			answered++
		}
	}
	// The workers may not yet have taken their first requests off the
	// queue when it fills: up to proxyInFlight more are refused then.
	if answered != 0 || refused < extra || refused > extra+proxyInFlight {
		t.Fatalf("while the reader is backed up: %d answered, %d refused; want 0 and %d-%d", answered, refused, extra, extra+proxyInFlight)
	}
	// Another reader is not held up by it.
	if m, err := other.Request("$JS.API.DIRECT.GET.KEYLEDGER", []byte(`{"seq":3}`), 5*time.Second); err != nil || len(m.Data) == 0 {
		t.Fatalf("another auditor's read while acme is backed up: %v", err)
	}
	backlog.Store(0)
	for answered < proxyInFlight+proxyQueue+extra-refused {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("once the reader has drained: %d of %d queued requests answered: %v", answered, proxyInFlight+proxyQueue+extra-refused, err)
		}
		if len(m.Data) > 0 {
			answered++
		}
	}
}

// A reader's account takes at most readerMaxConnections connections (each
// one more copy of every answer it subscribes to twice); another
// reader's account is not affected.
func TestReaderConnectionLimit(t *testing.T) {
	srv := proxyServer(t, Options{Auditors: []string{"acme"}}, 1, 16)
	for range readerMaxConnections {
		auditorConn(t, srv, "acme")
	}
	seed := srv.AuditorSeedFile("acme")
	auth, err := nats.NkeyOptionFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	if nc, err := nats.Connect(srv.ClientURL(), auth, nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatalf("auditor acme's connection %d was accepted", readerMaxConnections+1)
	}
	if m, err := auditConn(t, srv).Request("$JS.API.DIRECT.GET.KEYLEDGER", []byte(`{"seq":1}`), 5*time.Second); err != nil || len(m.Data) == 0 {
		t.Fatalf("the default auditor beside acme's full account: %v", err)
	}
}
