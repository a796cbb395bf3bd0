package auditapi

import (
	"bufio"
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/ledger/event"
)

// History reads committed events back from the ledger.
type History interface {
	EventsFrom(ctx context.Context, from uint64, fn func(event.Record) error) error
	EventsSince(ctx context.Context, since time.Time, fn func(event.Record) error) error
}

const keepAlive = 15 * time.Second

// events streams the caller's account's events as Server-Sent Events:
// GET /audit/events?key=<key id or ARN>&event=<event name>&since=<RFC 3339>,
// resuming after the Last-Event-ID header (an event index) if given. Each
// event's id is its ledger index and its data the event's exact bytes.
// With before=<index> it sends only history below that index, then ": end"
// and closes: a page of older events (a console reads a long history a
// window at a time, newest first).
func (a *API) events(c *fiber.Ctx, caller keyservice.Caller) error {
	q, err := a.eventsQuery(c, caller)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	sub := a.hub.Join(q.match) // before reading history, so nothing falls between
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer a.hub.Leave(sub)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-a.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		s := &eventStream{w: w, history: a.history, q: q, last: q.after}
		s.run(ctx, sub)
	})
	return nil
}

// eventsQuery is what one subscriber asked for.
type eventsQuery struct {
	account   string
	key       string // a key id, or "" for every key
	operation string // an event name, or "" for every event
	after     int64  // the last index the subscriber has, or -1
	since     time.Time
	before    int64 // history below this index only, then the end; -1: no end
}

// eventsQuery reads and authorizes a subscription request. The values are
// copies: Fiber reuses its buffers, and the stream outlives the handler.
func (a *API) eventsQuery(c *fiber.Ctx, caller keyservice.Caller) (eventsQuery, error) {
	q := eventsQuery{account: caller.Account, key: strings.Clone(c.Query("key")),
		operation: strings.Clone(c.Query("event")), after: -1, before: -1}
	if i := strings.LastIndex(q.key, "key/"); i >= 0 {
		q.key = q.key[i+len("key/"):]
	}
	resource := "*"
	if q.key != "" {
		resource = "arn:aws:kms:" + a.region + ":" + caller.Account + ":key/" + q.key
	}
	if err := a.svc.AuthorizeAudit(caller, "keyledger:SubscribeAudit", resource); err != nil {
		return q, err
	}
	if b := c.Query("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 0 {
			return q, bad("before must be an event index")
		}
		q.before = n
	}
	if id := c.Get("Last-Event-ID"); id != "" {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil || n < 0 {
			return q, bad("Last-Event-ID must be an event index")
		}
		q.after = n
	} else if s := c.Query("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return q, bad("since must be an RFC 3339 time")
		}
		q.since = t
	}
	return q, nil
}

func (q eventsQuery) match(r event.Record) bool {
	e := r.Event
	return e.Account == q.account && (q.key == "" || e.KeyID == q.key) && (q.operation == "" || e.Operation == q.operation)
}

// eventStream writes one subscriber's events: history first, then live
// events, each index at most once and in order.
type eventStream struct {
	w       *bufio.Writer
	history History
	q       eventsQuery
	last    int64 // the last index sent
	num     []byte
}

// run catches up from the ledger, then sends live events until ctx ends or
// the subscriber goes away.
func (s *eventStream) run(ctx context.Context, sub *Sub) {
	if s.q.before >= 0 {
		if err := s.catchUp(ctx); err == nil || errors.Is(err, errBefore) {
			s.w.WriteString(": end\n\n")
			s.w.Flush()
		}
		return
	}
	if err := s.catchUp(ctx); err != nil {
		return
	}
	s.w.WriteString(": live\n\n")
	if s.w.Flush() != nil {
		return
	}
	idle := time.NewTimer(keepAlive)
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-sub.C:
			s.write(r)
			s.drain(sub)
			if s.w.Flush() != nil {
				return
			}
		case <-idle.C:
			s.w.WriteString(": keep-alive\n\n")
			if s.w.Flush() != nil {
				return
			}
			idle.Reset(keepAlive)
		}
		if sub.Lagging() && (s.catchUp(ctx) != nil || s.w.Flush() != nil) {
			return
		}
	}
}

// drain buffers the live events already queued, so a burst is flushed
// once rather than event by event.
func (s *eventStream) drain(sub *Sub) {
	for s.w.Buffered() < 64<<10 {
		select {
		case r := <-sub.C:
			s.write(r)
		default:
			return
		}
	}
}

// catchUp sends from the ledger what the subscriber has not had: after the
// last index sent, or since the requested time.
func (s *eventStream) catchUp(ctx context.Context) error {
	if s.last >= 0 {
		return s.history.EventsFrom(ctx, uint64(s.last+1), s.send)
	}
	if !s.q.since.IsZero() {
		return s.history.EventsSince(ctx, s.q.since, s.send)
	}
	if s.q.before >= 0 {
		return s.history.EventsFrom(ctx, 0, s.send)
	}
	return nil
}

// errBefore ends a page of history at its before index.
var errBefore = errors.New("auditapi: page ends")

// send buffers one history event, flushing in large writes.
func (s *eventStream) send(r event.Record) error {
	if s.q.before >= 0 && int64(r.Pos) >= s.q.before {
		return errBefore
	}
	s.write(r)
	if s.w.Buffered() > 32<<10 {
		return s.w.Flush()
	}
	return nil
}

// write buffers one event, unless it was sent already or does not match.
func (s *eventStream) write(r event.Record) {
	if int64(r.Pos) <= s.last || !s.q.match(r) {
		return
	}
	s.num = strconv.AppendUint(s.num[:0], r.Pos, 10)
	s.w.WriteString("id: ")
	s.w.Write(s.num)
	s.w.WriteString("\nevent: ")
	s.w.WriteString(r.Event.Operation)
	s.w.WriteString("\ndata: ")
	s.w.Write(r.Raw)
	s.w.WriteString("\n\n")
	s.last = int64(r.Pos)
}
