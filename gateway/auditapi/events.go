package auditapi

import (
	"bufio"
	"context"
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
func (a *API) events(c *fiber.Ctx, caller keyservice.Caller) error {
	// Copies: Fiber reuses its buffers, and the stream outlives the handler.
	keyFilter, opFilter := strings.Clone(c.Query("key")), strings.Clone(c.Query("event"))
	if i := strings.LastIndex(keyFilter, "key/"); i >= 0 {
		keyFilter = keyFilter[i+len("key/"):]
	}
	resource := "*"
	if keyFilter != "" {
		resource = "arn:aws:kms:" + a.region + ":" + caller.Account + ":key/" + keyFilter
	}
	if err := a.svc.AuthorizeAudit(caller, "keyledger:SubscribeAudit", resource); err != nil {
		return err
	}
	last := int64(-1) // the last index sent
	var since time.Time
	if id := c.Get("Last-Event-ID"); id != "" {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil || n < 0 {
			return bad("Last-Event-ID must be an event index")
		}
		last = n
	} else if s := c.Query("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return bad("since must be an RFC 3339 time")
		}
		since = t
	}
	account := caller.Account
	match := func(r event.Record) bool {
		e := r.Event
		return e.Account == account && (keyFilter == "" || e.KeyID == keyFilter) && (opFilter == "" || e.Operation == opFilter)
	}
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	sub := a.hub.Join(match) // before reading history, so nothing falls between
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
		// write buffers one event; flush sends what is buffered. Live events
		// are flushed once the queue is empty, not one by one.
		var num []byte
		write := func(r event.Record) {
			if int64(r.Event.Index) <= last || !match(r) {
				return
			}
			num = strconv.AppendUint(num[:0], r.Event.Index, 10)
			w.WriteString("id: ")
			w.Write(num)
			w.WriteString("\nevent: ")
			w.WriteString(r.Event.Operation)
			w.WriteString("\ndata: ")
			w.Write(r.Raw)
			w.WriteString("\n\n")
			last = int64(r.Event.Index)
		}
		send := func(r event.Record) error {
			write(r)
			if w.Buffered() > 32<<10 {
				return w.Flush()
			}
			return nil
		}
		catchUp := func() error {
			if last >= 0 {
				return a.history.EventsFrom(ctx, uint64(last+1), send)
			}
			if !since.IsZero() {
				return a.history.EventsSince(ctx, since, send)
			}
			return nil
		}
		if err := catchUp(); err != nil {
			return
		}
		w.WriteString(": live\n\n")
		if w.Flush() != nil {
			return
		}
		idle := time.NewTimer(keepAlive)
		defer idle.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case r := <-sub.C:
				write(r)
			drain:
				for w.Buffered() < 64<<10 {
					select {
					case r := <-sub.C:
						write(r)
					default:
						break drain
					}
				}
				if w.Flush() != nil {
					return
				}
			case <-idle.C:
				w.WriteString(": keep-alive\n\n")
				if w.Flush() != nil {
					return
				}
				idle.Reset(keepAlive)
			}
			if sub.Lagging() && (catchUp() != nil || w.Flush() != nil) {
				return
			}
		}
	})
	return nil
}
