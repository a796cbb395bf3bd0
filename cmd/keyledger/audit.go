package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/backend"
	"github.com/keyledger/keyledger/ledger/progress"
)

// openLedgerForAudit opens the ledger of a running deployment (--nats-url)
// or, with the server stopped, of a data directory.
func openLedgerForAudit(bf *backendFlags, stderr io.Writer) (*ledger.Ledger, *backend.Backend, func(), bool) {
	release := func() {}
	if bf.natsURL == "" {
		// Directly on a data directory: the server must be stopped.
		if _, err := os.Stat(filepath.Join(bf.dataDir, "jetstream")); err != nil {
			fmt.Fprintf(stderr, "keyledger: no ledger under %s: %v\n", bf.dataDir, err)
			return nil, nil, nil, false
		}
		r, err := lockDataDir(bf.dataDir)
		if err != nil {
			fmt.Fprintf(stderr, "keyledger: %v\n", err)
			return nil, nil, nil, false
		}
		release = r
	}
	b, err := bf.open("", false, nil)
	if err != nil {
		release()
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return nil, nil, nil, false
	}
	// Readers never create or change the stream: a subscribe-only audit
	// identity may run them.
	l, err := b.OpenLedger(context.Background(), ledger.Config{Stream: bf.stream, Subject: bf.subject, ReadOnly: true})
	if err != nil {
		b.Close()
		release()
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return nil, nil, nil, false
	}
	return l, b, func() { b.Close(); release() }, true
}

// latestCheckpoint is the newest stored signed checkpoint of a ledger stream.
func latestCheckpoint(ctx context.Context, b *backend.Backend, stream string) ([]byte, error) {
	cps, err := b.ReadCheckpoints(ctx, stream)
	if err != nil {
		return nil, err
	}
	return cps.Latest(ctx)
}

// checkpointKeyFile is where serve keeps a data directory's checkpoint
// signing key unless --checkpoint-key says otherwise.
func (b *backendFlags) checkpointKeyFile() string { return filepath.Join(b.dataDir, "checkpoint.key") }

// checkpointVerifierFile is the verifier key serve writes beside the
// default checkpoint signing key: what readers of a data directory check
// checkpoints with unless --pubkey says otherwise.
func (b *backendFlags) checkpointVerifierFile() string { return b.checkpointKeyFile() + ".pub" }

// parseTimeFlag reads a --since/--until/--as-of value: an RFC 3339 time or
// a date; empty is the zero time.
func parseTimeFlag(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time or a date", v)
}

// newMeter shows progress over a walk of the stream up to sequence last:
// a bar when stderr is a terminal, log lines otherwise.
func newMeter(label string, last uint64, stderr io.Writer) *progress.Meter {
	o := progress.Options{Logger: slog.New(slog.NewTextHandler(stderr, nil))}
	if f, ok := stderr.(*os.File); ok && progress.IsTerminal(f) {
		o.Terminal = f
	}
	return progress.New(label, 0, last, o)
}

// keyName is the name in a note verifier key ("name+hash+key").
func keyName(vkey string) string {
	name, _, _ := strings.Cut(strings.TrimSpace(vkey), "+")
	return name
}
