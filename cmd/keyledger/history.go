package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/keyledger/keyledger/gateway/history"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/backend"
	"github.com/keyledger/keyledger/ledger/writer"
)

// historySource wires what report compliance and keys describe answer
// from (package history): the ledger, its snapshots and checkpoints, the
// checkpoint verifier key in vkeyFile, and on a data directory its own
// writer key. Skipped snapshots are logged to stderr.
func historySource(ctx context.Context, l *ledger.Ledger, b *backend.Backend, bf *backendFlags, vkeyFile string, stderr io.Writer) *history.Source {
	s := &history.Source{Ledger: l, VerifierFile: vkeyFile,
		Log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if store, err := b.ReadSnapshots(ctx, bf.stream); err == nil {
		s.Snapshots = store
	}
	if cps, err := b.ReadCheckpoints(ctx, bf.stream); err == nil {
		s.Checkpoints = cps
	}
	if vkey, err := os.ReadFile(vkeyFile); err == nil {
		s.Verifier = strings.TrimSpace(string(vkey))
	}
	if bf.natsURL == "" {
		s.Own, _ = writer.Load(filepath.Join(bf.dataDir, "writer.key"))
	}
	return s
}
