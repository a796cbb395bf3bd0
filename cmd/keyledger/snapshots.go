package main

import (
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/keyledger/keyledger/gateway/node"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/backend"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/writer"
	"github.com/keyledger/keyledger/projections/resume"
)

// snapshotImage returns the newest snapshot image of the projections whose
// events all happened at or before at (zero: the newest), signed by a
// writer key the reader trusts and still matching the ledger; nil when
// there is none, and the reader folds from the first event. Trusted are
// the data directory's own writer key and the writers named by the
// ledger's signed checkpoints that verify with vkeyFile. Skipped snapshots
// are logged to stderr.
func snapshotImage(ctx context.Context, l *ledger.Ledger, b *backend.Backend, bf *backendFlags, vkeyFile string,
	at time.Time, stderr io.Writer) *resume.Image {
	store, err := b.ReadSnapshots(ctx, bf.stream)
	if err != nil {
		return nil
	}
	trusted := trustedWriters(ctx, b, bf, vkeyFile)
	if len(trusted) == 0 {
		return nil
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	im, err := node.ImageAt(ctx, l, store, at, func(id string) ed25519.PublicKey { return trusted[id] }, log)
	if err != nil {
		log.Warn("snapshots unreadable; folding the whole ledger", "error", err)
		return nil
	}
	return im
}

// trustedWriters are the writer keys a reader trusts to sign snapshots.
func trustedWriters(ctx context.Context, b *backend.Backend, bf *backendFlags, vkeyFile string) map[string]ed25519.PublicKey {
	out := map[string]ed25519.PublicKey{}
	if bf.natsURL == "" {
		if k, err := writer.Load(filepath.Join(bf.dataDir, "writer.key")); err == nil {
			out[k.ID()] = k.Public()
		}
	}
	vkey, err := os.ReadFile(vkeyFile)
	if err != nil {
		return out
	}
	cps, err := b.ReadCheckpoints(ctx, bf.stream)
	if err != nil {
		return out
	}
	signed, err := cps.All(ctx)
	if err != nil {
		return out
	}
	for _, s := range signed {
		cp, err := merkle.Open(s, string(vkey))
		if err != nil {
			continue
		}
		for id, text := range cp.Writers() {
			if pub, err := writer.ParsePublic(text); err == nil && writer.ID(pub) == id {
				out[id] = pub
			}
		}
	}
	return out
}
