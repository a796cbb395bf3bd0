package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
)

// auditTail prints events live, one JSON line each (their exact bytes),
// optionally starting with history from a time or an index. Live events
// need a NATS connection (--nats-url; an embedded server listens with
// serve --nats-listen); on a stopped server's --data-dir it prints the
// history and exits.
func auditTail(args []string, stdout, stderr io.Writer) int {
	fs, bf := ledgerFlagSet("audit tail", stderr)
	key := fs.String("key", "", "only events about this key id")
	op := fs.String("event", "", "only events of this name (e.g. Decrypt)")
	account := fs.String("account", "", "only events of this account")
	sinceFlag := fs.String("since", "", "first print the events since this time (RFC 3339 or YYYY-MM-DD)")
	from := fs.Int64("from", -1, "first print the events from this index on")
	count := fs.Int("count", 0, "exit after this many events (0: run until interrupted)")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	since, err := parseTimeFlag(*sinceFlag)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger audit tail: --since: %v\n", err)
		return 2
	}
	l, b, done, ok := openLedgerForAudit(bf, stderr)
	if !ok {
		return 1
	}
	defer done()
	// Fold the ledger first, so history shows only what its writers signed.
	if _, err := l.Replay(context.Background(), chain.Head{}, func(event.Record) error { return nil }); err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	if bf.natsURL == "" {
		return tailHistory(l, *key, *op, *account, since, *from, *count, stdout, stderr)
	}
	feed := b.Feed(bf.stream)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-sigs; cancel() }()

	var mu sync.Mutex
	last, printed := int64(-1), 0
	match := func(e *event.Event) bool {
		return (*key == "" || e.KeyID == *key) && (*op == "" || e.Operation == *op) && (*account == "" || e.Account == *account)
	}
	printLocked := func(idx uint64, raw []byte) {
		if int64(idx) <= last || (*count > 0 && printed >= *count) {
			return
		}
		last = int64(idx)
		printed++
		fmt.Fprintf(stdout, "%s\n", raw)
		if *count > 0 && printed >= *count {
			cancel()
		}
	}
	print := func(idx uint64, raw []byte) {
		mu.Lock()
		defer mu.Unlock()
		printLocked(idx, raw)
	}
	// Live first, so nothing falls between history and live.
	var buffered []event.Record
	historyDone := false
	sub, err := feed.Subscribe(feed.Filter(*account, *key, *op), func(idx uint64, raw []byte) {
		mu.Lock()
		if !historyDone {
			e, err := event.Decode(raw)
			if err == nil {
				buffered = append(buffered, event.Record{Event: e, Raw: append([]byte(nil), raw...)})
			}
			mu.Unlock()
			return
		}
		mu.Unlock()
		print(idx, raw)
	})
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	defer sub.Unsubscribe()
	history := func(r event.Record) error {
		if match(r.Event) {
			print(r.Pos, r.Raw)
		}
		return ctx.Err()
	}
	switch {
	case *from >= 0:
		err = l.EventsFrom(ctx, uint64(*from), history)
	case !since.IsZero():
		err = l.EventsSince(ctx, since, history)
	}
	if err != nil && ctx.Err() == nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	mu.Lock()
	for _, r := range buffered {
		printLocked(r.Pos, r.Raw)
	}
	historyDone = true
	mu.Unlock()
	<-ctx.Done()
	return 0
}

// tailHistory prints the matching events of a stopped server's ledger from
// an index or a time (default: all) and returns.
func tailHistory(l *ledger.Ledger, key, op, account string, since time.Time, from int64, count int, stdout, stderr io.Writer) int {
	printed := 0
	stop := errors.New("enough")
	fn := func(r event.Record) error {
		e := r.Event
		if (key != "" && e.KeyID != key) || (op != "" && e.Operation != op) || (account != "" && e.Account != account) {
			return nil
		}
		fmt.Fprintf(stdout, "%s\n", r.Raw)
		if printed++; count > 0 && printed >= count {
			return stop
		}
		return nil
	}
	var err error
	if !since.IsZero() && from < 0 {
		err = l.EventsSince(context.Background(), since, fn)
	} else {
		err = l.EventsFrom(context.Background(), uint64(max(from, 0)), fn)
	}
	if err != nil && !errors.Is(err, stop) {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	return 0
}
