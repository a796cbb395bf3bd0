package embedded

import (
	"encoding/json"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/keyledger/keyledger/ledger/internal/directget"
)

// The read proxy. A reading identity's JetStream API requests (auth.go:
// accountAPI, streamAPI) do not reach JetStream directly: its account
// imports each API subject from keyledger's account as a subject of the
// read proxy, proxySubject(account, kind, subject), exported to that
// account only, so the account in the subject is the one that asked. The
// proxy, keyledger's own in-process connection, asks JetStream itself and
// relays the answer to the requester's reply subject (the server's
// mapping back into the reader's account).
//
// It exists because nats-server bounds none of it: a batched direct get
// from a client is served inline, every message of the batch queued at
// once on the stream's outbound queue, without a bound, before anything
// is delivered, and that queue also carries keyledger's publish
// acknowledgements. 10,000 such requests from connections that never read
// took the server's heap to GiBs and held keyledger's acks for seconds
// (flood_test.go). The proxy bounds it:
//
//   - a batch is at most directget.MaxBatch messages and directget.MaxBytes
//     bytes (a larger one is capped, as keyledger's own reader asks; the
//     end-of-batch status says how many remain);
//   - at most proxyInFlight requests of one reader, and proxyGlobalInFlight
//     of all, are served at once; proxyQueue more of one reader wait, and
//     further ones are refused at once with status 429;
//   - a reader's next request, and each proxyCheckEvery bytes of an answer,
//     wait until the reader's connections have taken what they were sent
//     (under proxyPendingCap bytes pending in the server); a reader that
//     does not read within proxyDrainWait has the request refused or cut
//     short, and the server closes its connection as a slow consumer.
//
// So the server holds at most about proxyGlobalInFlight batches, and each
// reader's connections about proxyPendingCap, whatever the readers send.
// Headers of a request are dropped (a trace destination would otherwise
// be published in keyledger's account); a direct get's answer is relayed
// as the server's headers (status as the Status header, as nats.go reads
// it) and data, and ended with an empty message, which drops the server's
// reply mapping at once.
const (
	proxyPrefix = "$KEYLEDGER.READ"
	proxyAPI    = "API"    // answered once
	proxyDirect = "DIRECT" // direct gets: a stream of messages
)

// Bounds of the read proxy (above).
const (
	proxyInFlight       = 4
	proxyQueue          = 64
	proxyGlobalInFlight = 8
	// proxyQueueWait: a request that waited longer is refused, not served
	// to a requester that has most likely given up.
	proxyQueueWait  = 10 * time.Second
	proxyPendingCap = 16 << 20
	proxyDrainWait  = 10 * time.Second
	proxyCheckEvery = 4 << 20
	// proxyStall is how long the proxy waits for JetStream's next answer.
	proxyStall = 5 * time.Second
	// proxyMaxRequest bounds a request's body (a direct get's is ~100 bytes).
	proxyMaxRequest = 64 << 10
	// proxyResponseThreshold is how long the server keeps the reply mapping
	// of a request the proxy has not answered (one the proxy dropped: its
	// subscription's pending limit).
	proxyResponseThreshold = 30 * time.Second
)

// proxySubject is the read proxy's subject for a JetStream API subject
// asked from a reader's account.
func proxySubject(account, kind, subj string) string {
	return proxyPrefix + "." + account + "." + kind + "." + subj
}

// readProxy serves the reading identities' requests (above).
type readProxy struct {
	nc      *nats.Conn
	sub     *nats.Subscription
	pending func(account string) int // bytes the account's connections have not taken
	global  chan struct{}
	readers map[string]chan *proxyRequest // by account; fixed once started
	done    chan struct{}
	wg      sync.WaitGroup
	refused atomic.Int64  // requests refused (status 429, 413, …)
	dropped *atomic.Int64 // times the subscription dropped requests
}

// proxyRequest is one reader's request.
type proxyRequest struct {
	account string
	direct  bool
	api     string // the JetStream API subject
	reply   string // the server's mapping back to the requester
	body    []byte
	at      time.Time
}

// startReadProxy serves the readers' accounts on a connection of its own
// (so that a stalled relay never delays keyledger's writes).
func (s *Server) startReadProxy(readers []*server.Account, pending func(string) int) (*readProxy, error) {
	if pending == nil {
		pending = s.pendingBytes
	}
	// Requests the proxy's subscription had no room for are dropped (their
	// requesters time out): counted, not printed.
	var dropped atomic.Int64
	nc, err := s.connect("keyledger-read-proxy", nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if err == nats.ErrSlowConsumer {
			dropped.Add(1)
		}
	}))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, r := range readers {
		names = append(names, r.Name)
	}
	p, err := newReadProxy(nc, names, pending)
	if err != nil {
		nc.Close()
		return nil, err
	}
	p.dropped = &dropped
	return p, nil
}

func newReadProxy(nc *nats.Conn, accounts []string, pending func(string) int) (*readProxy, error) {
	p := &readProxy{nc: nc, pending: pending, global: make(chan struct{}, proxyGlobalInFlight),
		readers: map[string]chan *proxyRequest{}, done: make(chan struct{})}
	for _, a := range accounts {
		q := make(chan *proxyRequest, proxyQueue)
		p.readers[a] = q
		for range proxyInFlight {
			p.wg.Go(func() { p.work(q) })
		}
	}
	sub, err := nc.Subscribe(proxyPrefix+".>", p.take)
	if err != nil {
		p.close()
		return nil, err
	}
	// Requests are small; the handler only queues or refuses them.
	if err := sub.SetPendingLimits(1<<16, 16<<20); err != nil {
		p.close()
		return nil, err
	}
	p.sub = sub
	if err := nc.Flush(); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

func (p *readProxy) close() {
	select {
	case <-p.done:
		return
	default:
	}
	close(p.done)
	p.nc.Close()
	p.wg.Wait()
}

// take queues a request, or refuses it when its reader's queue is full.
func (p *readProxy) take(m *nats.Msg) {
	rest, ok := strings.CutPrefix(m.Subject, proxyPrefix+".")
	account, rest, _ := strings.Cut(rest, ".")
	kind, api, _ := strings.Cut(rest, ".")
	q := p.readers[account]
	// The reply is the server's mapping back into the reader's account;
	// anything else the proxy never publishes to.
	if !ok || q == nil || !strings.HasPrefix(m.Reply, "_R_.") || !readableAPI(kind, api) {
		return
	}
	r := &proxyRequest{account: account, direct: kind == proxyDirect, api: api, reply: m.Reply, body: m.Data, at: time.Now()}
	select {
	case q <- r:
	default:
		p.refuse(r, "429", "Too Many Requests")
	}
}

// readableAPI reports whether api is a subject of the read API (auth.go)
// asked under the right kind.
func readableAPI(kind, api string) bool {
	switch kind {
	case proxyDirect:
		return strings.HasPrefix(api, "$JS.API.DIRECT.GET.")
	case proxyAPI:
		for _, a := range accountAPI {
			if api == a {
				return true
			}
		}
		return strings.HasPrefix(api, "$JS.API.STREAM.INFO.") || strings.HasPrefix(api, "$JS.API.STREAM.MSG.GET.")
	}
	return false
}

func (p *readProxy) work(q chan *proxyRequest) {
	for {
		select {
		case <-p.done:
			return
		case r := <-q:
			p.serve(r)
		}
	}
}

func (p *readProxy) serve(r *proxyRequest) {
	select {
	case p.global <- struct{}{}:
	case <-p.done:
		return
	}
	defer func() { <-p.global }()
	if time.Since(r.at) > proxyQueueWait || !p.drained(r.account) {
		p.refuse(r, "429", "Too Many Requests")
		return
	}
	body, batched, status, desc := clampRequest(r)
	if status != "" {
		p.refuse(r, status, desc)
		return
	}
	if r.direct {
		p.relayDirect(r, body, batched)
		return
	}
	m, err := p.nc.Request(r.api, body, proxyStall)
	switch {
	case err == nats.ErrNoResponders:
		p.refuse(r, "503", "")
	case err == nil:
		_ = p.nc.PublishMsg(&nats.Msg{Subject: r.reply, Header: m.Header, Data: m.Data})
	}
}

// clampRequest returns the body to ask JetStream with: a batched direct
// get's batch and byte bounds capped, parsed as the server parses it.
// status is set when the request is refused instead.
func clampRequest(r *proxyRequest) (body []byte, batched bool, status, desc string) {
	if len(r.body) > proxyMaxRequest {
		return nil, false, "413", "Request Too Large"
	}
	// $JS.API.DIRECT.GET.<stream> takes a request body; with a subject
	// after the stream (last message on it) the server refuses a batch.
	if !r.direct || strings.Count(r.api, ".") != 4 || len(r.body) == 0 {
		return r.body, false, "", ""
	}
	var req server.JSApiMsgGetRequest
	if err := json.Unmarshal(r.body, &req); err != nil {
		return nil, false, "408", "Malformed Request"
	}
	req.Batch = min(req.Batch, directget.MaxBatch)
	if req.MaxBytes <= 0 || req.MaxBytes > directget.MaxBytes {
		req.MaxBytes = directget.MaxBytes
	}
	body, err := json.Marshal(&req)
	if err != nil {
		return nil, false, "408", "Malformed Request"
	}
	return body, req.Batch != 0 || len(req.MultiLastFor) > 0, "", ""
}

// relayDirect asks JetStream for a direct get and relays every answer
// until a status (end of batch, not found, …) or, for a single get, the
// first; then ends the answer (an empty message).
func (p *readProxy) relayDirect(r *proxyRequest, body []byte, batched bool) {
	defer p.end(r)
	sub, err := p.nc.SubscribeSync(p.nc.NewInbox())
	if err != nil {
		return
	}
	defer sub.Unsubscribe()
	if err := p.nc.PublishRequest(r.api, sub.Subject, body); err != nil {
		return
	}
	sent := 0
	for {
		m, err := sub.NextMsg(proxyStall)
		if err != nil {
			return
		}
		if err := p.nc.PublishMsg(&nats.Msg{Subject: r.reply, Header: m.Header, Data: m.Data}); err != nil {
			return
		}
		if !batched || m.Header.Get("Status") != "" {
			return
		}
		if sent += len(m.Data); sent >= proxyCheckEvery {
			sent = 0
			if !p.drained(r.account) {
				return
			}
		}
	}
}

// drained waits until the account's connections hold under
// proxyPendingCap bytes the server has not yet written to them, at most
// proxyDrainWait.
func (p *readProxy) drained(account string) bool {
	deadline := time.Now().Add(proxyDrainWait)
	for p.pending(account) >= proxyPendingCap {
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-p.done:
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
	return true
}

// refuse answers r with a status and no data.
func (p *readProxy) refuse(r *proxyRequest, status, desc string) {
	p.refused.Add(1)
	h := nats.Header{"Status": {status}}
	if desc != "" {
		h.Set("Description", desc)
	}
	_ = p.nc.PublishMsg(&nats.Msg{Subject: r.reply, Header: h})
	if r.direct {
		p.end(r)
	}
}

// end ends a direct get's answer: an empty message, which has the server
// drop its reply mapping (a streamed export's otherwise lives for
// proxyResponseThreshold after the last answer).
func (p *readProxy) end(r *proxyRequest) { _ = p.nc.Publish(r.reply, nil) }

// pendingBytes is what the server holds for an account's connections and
// has not yet written to them.
func (s *Server) pendingBytes(account string) int {
	cz, err := s.ns.Connz(&server.ConnzOptions{Account: account, Limit: math.MaxInt32})
	if err != nil {
		return 0
	}
	n := 0
	for _, c := range cz.Conns {
		n += c.Pending
	}
	return n
}
