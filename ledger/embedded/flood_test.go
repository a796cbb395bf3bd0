package embedded

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// rawAuditConn logs in as the audit identity over plain TCP, subscribes
// to its inbox and then never reads again: the slowest reader a server
// can have. It returns nil if the server refuses the connection (the
// audit account's connection limit).
func rawAuditConn(t *testing.T, srv *Server) net.Conn {
	t.Helper()
	seed, err := os.ReadFile(srv.AuditSeedFile())
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(seed))))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.ClientURL(), "nats://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Nonce string `json:"nonce"`
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(strings.TrimSpace(line), "INFO ")), &info); err != nil {
		t.Fatal(err)
	}
	sig, err := kp.Sign([]byte(info.Nonce))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1,\"headers\":true,\"nkey\":%q,\"sig\":%q}\r\nSUB _INBOX.flood.> 1\r\nPING\r\n",
		pub, base64.RawURLEncoding.EncodeToString(sig))
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "-ERR") {
			if strings.Contains(line, "maximum account active connections exceeded") {
				return nil
			}
			t.Fatal(line)
		}
		if strings.HasPrefix(line, "PONG") {
			return c
		}
	}
}

// floodStream makes a KEYLEDGER stream of n messages of size bytes, as
// keyledger's own identity.
func floodStream(t *testing.T, srv *Server, n, size int) jetstream.JetStream {
	t.Helper()
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
	for range n {
		if _, err := js.Publish(ctx, "keyledger.events", body); err != nil {
			t.Fatal(err)
		}
	}
	return js
}

// heapPeak samples the process's heap (the server is in process) until stop.
func heapPeak(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		var peak uint64
		var ms runtime.MemStats
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-stop:
				out <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

// TestAuditFloodOfBatchedDirectGets: the audit identity may ask for
// batched direct gets. nats-server answers one from a client inline,
// loading every message of the batch into the stream's (unbounded)
// outbound queue, the queue that also carries keyledger's publish
// acknowledgements; so reads go through keyledger's read proxy
// (readproxy.go). Measures the server's heap and keyledger's acks (one
// publish every 20 ms) for 10k requests of the batch size keyledger's
// reader uses, for requests with no batch or byte bound, for 200k tiny
// ones, and from 100 connections. KEYLEDGER_PROBE_FLOOD=1 runs it (~15 s;
// KEYLEDGER_PROBE_HEAPPROFILE=FILE also writes a heap profile).
//
// Measured before the proxy, in one script with the build after it (the
// README's table): 10k reader-size requests took the heap +3.4 GiB and
// held keyledger's acks 3.3 s (after: +287 MiB, 76 ms); 10k unbounded
// +11.1 GiB, 18.6 s (after: +287 MiB, 79 ms); from 100 connections +20.5
// GiB, 36.9 s (after: 16 connections accepted, +321 MiB, 39 ms). What
// remains is the fan-out within the account (the connections all
// subscribe to one inbox wildcard) and the server's reply mappings.
func TestAuditFloodOfBatchedDirectGets(t *testing.T) {
	if os.Getenv("KEYLEDGER_PROBE_FLOOD") == "" {
		t.Skip("a probe of some GiB of heap before the read proxy (see the doc comment); KEYLEDGER_PROBE_FLOOD=1 runs it")
	}
	for _, tc := range []struct {
		name  string
		body  string
		conns int
		reqs  int
	}{
		{"reader-size", `{"seq":1,"batch":1024,"max_bytes":16777216}`, 10, 1000},
		{"unbounded", `{"seq":1,"batch":2000000000,"max_bytes":9000000000000000000}`, 10, 1000},
		{"tiny-404", `{"seq":900000000,"batch":1}`, 10, 20000},
		{"many-conns", `{"seq":1,"batch":1024,"max_bytes":16777216}`, 100, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			srv, err := Start(Options{DataDir: filepath.Join(dir, "js"), AuthDir: dir, Listen: "127.0.0.1:-1", NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(srv.Shutdown)
			js := floodStream(t, srv, 64, 1<<20) // 64 MiB, as restore writes group commits
			runtime.GC()
			var base runtime.MemStats
			runtime.ReadMemStats(&base)

			stop := make(chan struct{})
			peak := heapPeak(stop)
			var wg sync.WaitGroup
			var sent atomic.Int64
			start := time.Now()
			conns := 0
			for c := range tc.conns {
				conn := rawAuditConn(t, srv)
				if conn == nil {
					continue
				}
				conns++
				wg.Go(func() {
					w := bufio.NewWriterSize(conn, 1<<16)
					for i := range tc.reqs {
						if _, err := fmt.Fprintf(w, "PUB $JS.API.DIRECT.GET.KEYLEDGER _INBOX.flood.%d.%d %d\r\n%s\r\n", c, i, len(tc.body), tc.body); err != nil {
							return // closed by the server (slow consumer)
						}
						sent.Add(1)
					}
					w.Flush()
				})
			}
			// While the flood runs and 2 s after: how long keyledger's own
			// writes wait for their acks (one every 20 ms).
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			flooded := make(chan struct{})
			go func() { wg.Wait(); close(flooded) }()
			var ack time.Duration
			var acks int
			var ackErr error
			var quiet <-chan time.Time
		acking:
			for {
				ackStart := time.Now()
				if _, err := js.Publish(ctx, "keyledger.events", []byte("x")); err != nil && ackErr == nil {
					ackErr = err
				}
				ack = max(ack, time.Since(ackStart))
				acks++
				select {
				case <-flooded:
					flooded, quiet = nil, time.After(2*time.Second) // let the server work off what it queued
				case <-quiet:
					break acking
				case <-time.After(20 * time.Millisecond):
				}
			}
			close(stop)
			p := <-peak
			runtime.GC()
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if f := os.Getenv("KEYLEDGER_PROBE_HEAPPROFILE"); f != "" {
				out, _ := os.Create(f)
				pprof.WriteHeapProfile(out)
				out.Close()
			}
			t.Logf("%s: %d requests sent on %d of %d connections (the rest refused) in %v; heap in use %d MiB before, peak %d MiB (+%d MiB), %d MiB after GC; keyledger's publish acks during the flood and 2 s after: %d, the slowest %v (%v)",
				tc.name, sent.Load(), conns, tc.conns, time.Since(start).Round(time.Millisecond), base.HeapInuse>>20, p>>20, (p-base.HeapInuse)>>20, after.HeapInuse>>20, acks, ack.Round(time.Millisecond), ackErr)
			if grew := int64(p) - int64(base.HeapInuse); grew > 512<<20 {
				t.Errorf("%s: the audit identity grew the server's heap by %d MiB", tc.name, grew>>20)
			}
		})
	}
}
