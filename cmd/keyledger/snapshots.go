package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/keyledger/keyledger/gateway/node"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/backend"
	"github.com/keyledger/keyledger/ledger/writer"
	"github.com/keyledger/keyledger/projections/resume"
)

// snapshotImage returns the newest snapshot image of the projections whose
// events all happened at or before at (zero: the newest), signed by a
// writer key the reader trusts and still matching the ledger; nil when
// there is none, and the reader folds from the first event. Trusted are
// the data directory's own writer key and the writers named by the
// ledger's newest signed checkpoint, if it verifies with vkeyFile. Skipped
// snapshots are logged to stderr.
func snapshotImage(ctx context.Context, l *ledger.Ledger, b *backend.Backend, bf *backendFlags, vkeyFile string,
	at time.Time, stderr io.Writer) *resume.Image {
	store, err := b.ReadSnapshots(ctx, bf.stream)
	if err != nil {
		return nil
	}
	trusted, ok := trustedWriters(ctx, b, bf, vkeyFile)
	if !ok {
		return nil
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	im, err := node.ImageAt(ctx, l, store, at, trusted, log)
	if err != nil {
		log.Warn("snapshots unreadable; folding the whole ledger", "error", err)
		return nil
	}
	return im
}

// trustedWriters returns the writer keys a reader trusts to sign
// snapshots (and whether it trusts any): the data directory's own writer
// key, else the writers named by the newest signed checkpoint that
// verifies with vkeyFile (read once, and only when needed). Writers are
// only ever registered, never dropped, so the newest checkpoint names every
// writer an older one does: reading it alone keeps this cost flat however
// many checkpoints the ledger holds (one a second under load).
func trustedWriters(ctx context.Context, b *backend.Backend, bf *backendFlags, vkeyFile string) (func(id string) ed25519.PublicKey, bool) {
	var own *writer.Key
	if bf.natsURL == "" {
		own, _ = writer.Load(filepath.Join(bf.dataDir, "writer.key"))
	}
	var named map[string]ed25519.PublicKey // from the checkpoint, read once
	if own == nil {
		named = checkpointWriters(ctx, b, bf, vkeyFile)
	}
	return func(id string) ed25519.PublicKey {
		if own != nil && own.ID() == id {
			return own.Public()
		}
		if named == nil {
			named = checkpointWriters(ctx, b, bf, vkeyFile)
		}
		return named[id]
	}, own != nil || len(named) > 0
}

// checkpointWriters are the writers the newest signed checkpoint that
// verifies with vkeyFile names.
func checkpointWriters(ctx context.Context, b *backend.Backend, bf *backendFlags, vkeyFile string) map[string]ed25519.PublicKey {
	out := map[string]ed25519.PublicKey{}
	vkey, err := os.ReadFile(vkeyFile)
	if err != nil {
		return out
	}
	cps, err := b.ReadCheckpoints(ctx, bf.stream)
	if err != nil {
		return out
	}
	// The newest that verifies (as start-up reads it): a newer message
	// signed by another instance's key, or garbage, is skipped.
	cp, _, err := cps.Newest(ctx, string(vkey))
	if err != nil {
		return out
	}
	for id, text := range cp.Writers() {
		if pub, err := writer.ParsePublic(text); err == nil && writer.ID(pub) == id {
			out[id] = pub
		}
	}
	return out
}

// checkBase refuses a ledger that starts after removed segments unless the
// base's writers are those the newest signed checkpoint verifying with
// vkeyFile names: the base lives in a bucket whoever holds keyledger's NATS
// identity can write, so it is not trusted on its own (see
// ledger.CheckBaseWriters).
func checkBase(ctx context.Context, l *ledger.Ledger, b *backend.Backend, bf *backendFlags, vkeyFile string) error {
	if l.FirstIndex() == 0 {
		return nil
	}
	named := checkpointWriters(ctx, b, bf, vkeyFile)
	if len(named) == 0 {
		return fmt.Errorf("the ledger starts at event %d after removed segments, and no signed checkpoint verifying with %s names its writers to vouch for that base",
			l.FirstIndex(), vkeyFile)
	}
	trusted := make(map[string]string, len(named))
	for id, pub := range named {
		trusted[id] = base64.StdEncoding.EncodeToString(pub)
	}
	return l.CheckBaseWriters(trusted, "the newest signed checkpoint")
}
