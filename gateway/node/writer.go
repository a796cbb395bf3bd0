package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/writer"
)

// registerWriter makes sure the ledger accepts what this instance signs.
// On a ledger no writer has signed yet, the instance registers itself in
// its first message (the bootstrap); otherwise its key must already be
// registered, by a message another registered writer signed: a NATS
// credential alone never makes anyone a writer.
func registerWriter(ctx context.Context, l *ledger.Ledger, cfg Config) error {
	w := cfg.Ledger.Writer
	if w == nil {
		return errors.New("node: a writer key is required")
	}
	for attempt := 0; attempt < 3; attempt++ {
		if l.Registered(w.ID()) {
			return nil
		}
		if len(l.Writers()) > 0 {
			break
		}
		_, err := l.Append(ctx, keyservice.WriterRegistration(cfg.Clock.Now(), cfg.Region, w.ID(), w.PublicText(), w.ID()))
		if err == nil {
			cfg.Logger.Info("writer key registered in the ledger (first writer)", "writer", w.ID())
			return nil
		}
		if !errors.Is(err, ledger.ErrConflict) && !errors.Is(err, ledger.ErrNotRegistered) {
			return fmt.Errorf("node: registering the writer key: %w", err)
		}
	}
	return fmt.Errorf("node: writer key %s is not registered in this ledger: use the deployment's writer key, "+
		"or have a registered writer register it (Node.RegisterWriter)", w.ID())
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
