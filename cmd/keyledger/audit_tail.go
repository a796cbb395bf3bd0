package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/keyledger/keyledger/ledger/tail"
)

// auditTail prints events live, one JSON line each (their exact bytes),
// optionally starting with history from a time or an index (package
// tail). Live events need a NATS connection (--nats-url; an embedded
// server listens with serve --nats-listen); on a stopped server's
// --data-dir it prints the history and exits.
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
	req := tail.Request{Ledger: l, Account: *account, KeyID: *key, Operation: *op, Since: since, From: *from, Count: *count,
		Emit: func(raw []byte) { fmt.Fprintf(stdout, "%s\n", raw) }}
	ctx := context.Background()
	if bf.natsURL != "" {
		// Live until interrupted: an interrupt ends the tail cleanly.
		req.Feed = b.Feed(bf.stream)
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
	}
	if err := tail.Run(ctx, req); err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	return 0
}
