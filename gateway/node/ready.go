package node

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// MinFreeDisk is the free space below which an embedded instance reports
// not ready: JetStream refuses writes on a full disk, and every request
// writes an event.
const MinFreeDisk = 256 << 20

// ErrNotReady is every reason Ready gives.
var ErrNotReady = errors.New("not ready")

// Ready reports whether the instance can serve requests: it is past its
// start-up phases and not stopping, the ledger writer runs, the stream's
// leader answers in touch with a quorum of its replicas, every stored
// event has been folded into the projections, the background verifier
// found every message readable and every live key material readable in a
// stored copy, the data directory's disk has room, and this instance's
// writer key is registered and not revoked. The reason is for
// the log only; /readyz reveals none of it.
func (n *Node) Ready(ctx context.Context) error {
	if p := n.currentPhase(); p != phaseServing {
		return fmt.Errorf("%w: %s", ErrNotReady, p)
	}
	if n.Service.Sealed() {
		return fmt.Errorf("%w: the root key is sealed", ErrNotReady)
	}
	if d := n.verifier.Damage(); d != "" {
		return fmt.Errorf("%w: %s", ErrNotReady, d)
	}
	if d := n.materials.Damage(); d != "" {
		return fmt.Errorf("%w: %s", ErrNotReady, d)
	}
	if !n.Ledger.Writing() {
		return fmt.Errorf("%w: the ledger writer has stopped", ErrNotReady)
	}
	if w := n.cfg.Ledger.Writer; w != nil {
		if r, ok := n.Ledger.RevokedWriter(w.ID()); ok {
			return fmt.Errorf("%w: this instance's writer key %s was revoked by writer %s (event %d, stream sequence %d): "+
				"it can never write again; give it a new key (move <data-dir>/writer.key away, restart, register the new key)",
				ErrNotReady, w.ID(), r.By, r.Pos, r.Seq)
		}
	}
	if w := n.cfg.Ledger.Writer; w != nil && !n.Ledger.Registered(w.ID()) {
		return fmt.Errorf("%w: this instance's writer key %s is not registered: keyledger writer register --url <a registered instance> --pubkey %s",
			ErrNotReady, w.ID(), w.PublicText())
	}
	// Reachable, not LastStreamSeq: a NATS server cut off from its
	// cluster's quorum answers from its own replica, and only the stream's
	// leader in touch with a quorum proves commits can be stored. With no
	// requests while not ready, it is also what ends a stall.
	last, err := n.Ledger.Reachable(ctx)
	if err != nil {
		return fmt.Errorf("%w: the ledger is unreachable: %v", ErrNotReady, err)
	}
	// A commit stored a moment ago may not be folded yet, and an instance
	// that is not writing folds others' events every follow interval: give
	// the head a moment to reach what the stream held.
	for wait := time.NewTicker(20 * time.Millisecond); n.Ledger.Folded() < last; {
		select {
		case <-ctx.Done():
			wait.Stop()
			return fmt.Errorf("%w: the projections are behind the ledger (at %d of %d)", ErrNotReady, n.Ledger.Folded(), last)
		case <-wait.C:
		}
	}
	if n.cfg.DataDir != "" {
		free, err := freeBytes(n.cfg.DataDir)
		if err != nil {
			return fmt.Errorf("%w: cannot read free disk space: %v", ErrNotReady, err)
		}
		if free < MinFreeDisk {
			return fmt.Errorf("%w: %d MiB free on the data directory's disk", ErrNotReady, free>>20)
		}
	}
	return nil
}

// readyAll is /readyz: this instance ready, and on the front of a
// multi-region process every other region too.
func (n *Node) readyAll(ctx context.Context) error {
	if err := n.Ready(ctx); err != nil {
		return err
	}
	if c := n.alsoReady.Load(); c != nil {
		return c.fn(ctx)
	}
	return nil
}
