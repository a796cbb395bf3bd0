package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/writer"
)

// registerWriter makes sure the ledger accepts what this instance signs.
// On a ledger no writer has signed yet, the instance registers itself in
// its first message (the bootstrap); otherwise its key must be registered
// by a message another registered writer signed: a NATS credential alone
// never makes anyone a writer. An instance whose key is not registered
// starts anyway, records nothing (every request is answered 503, /readyz
// fails) and says what to run; it writes once it folds its registration,
// without a restart. It reports whether the key is registered now.
func registerWriter(ctx context.Context, l *ledger.Ledger, cfg Config) (bool, error) {
	w := cfg.Ledger.Writer
	if w == nil {
		return false, errors.New("node: a writer key is required")
	}
	if r, ok := l.RevokedWriter(w.ID()); ok {
		cfg.Logger.Error("this instance's writer key was revoked: it records and serves nothing, ever. "+
			"Move its writer key away, restart it (it generates a new one) and register the new key through a registered instance",
			"writer", w.ID(), "revoked_by", r.By, "event", r.Pos)
		return false, nil
	}
	for attempt := 0; attempt < 3; attempt++ {
		if l.Registered(w.ID()) {
			return true, nil
		}
		if len(l.Writers()) > 0 {
			break
		}
		_, err := l.Append(ctx, keyservice.WriterRegistration(cfg.Clock.Now(), cfg.Region, w.ID(), w.PublicText(), w.ID()))
		if err == nil {
			cfg.Logger.Info("writer key registered in the ledger (first writer)", "writer", w.ID())
			return true, nil
		}
		if !errors.Is(err, ledger.ErrConflict) && !errors.Is(err, ledger.ErrNotRegistered) {
			return false, fmt.Errorf("node: registering the writer key: %w", err)
		}
	}
	cfg.Logger.Error("this instance's writer key is not registered in the ledger: it records and serves nothing until it is. "+
		"Register it through a running, registered instance: keyledger writer register --url <that instance> --pubkey "+w.PublicText(),
		"writer", w.ID())
	return false, nil
}

// whenRegistered runs fn once the ledger registers this instance's writer
// key (it folds the registration another instance recorded), or not at all
// if ctx ends first.
func whenRegistered(ctx context.Context, l *ledger.Ledger, id string, log *slog.Logger, fn func()) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for !l.Registered(id) {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	log.Info("this instance's writer key is registered in the ledger: writing", "writer", id)
	fn()
}

// RegisterWriter registers another writer's public key (base64 Ed25519) in
// the ledger, signed by this instance's registered writer key, so that the
// instance holding it may write from then on.
func (n *Node) RegisterWriter(ctx context.Context, publicKey string) (string, error) {
	pub, err := writer.ParsePublic(publicKey)
	if err != nil {
		return "", err
	}
	id := writer.ID(pub)
	if n.Ledger.Registered(id) {
		return id, nil
	}
	_, err = n.Ledger.Append(ctx, keyservice.WriterRegistration(n.cfg.Clock.Now(), n.cfg.Region, id, publicKey, n.cfg.Ledger.Writer.ID()))
	return id, err
}
