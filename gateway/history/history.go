// Package history answers questions about a deployment from its ledger
// alone, without its running service: the compliance report, and a key as
// it was at a time (with who could use it). It is what `keyledger report
// compliance` and `keyledger keys describe` run on a stopped data
// directory or beside running instances (over NATS).
//
// An answer starts from the newest snapshot of the projections that a
// trusted writer signed and that still matches the ledger, and folds the
// events after it, at a cost that follows the distance from the snapshot;
// without one it folds from the first event. Trusted are the data
// directory's own writer key (unless the newest signed checkpoint names it
// revoked) and the writers that checkpoint names. A ledger that starts after removed segments is answered only when
// such a checkpoint vouches for the writers of its base (the base lives in
// a bucket whoever holds keyledger's NATS identity can write).
//
// What an answer costs, and what it does not grow with: opening the store
// (an embedded nats-server start, a fixed cost), one snapshot (the size of
// the live state), at most one checkpoint (the newest names every writer:
// writers are only ever added) and the fold of the tail after the snapshot,
// bounded by the snapshot interval, never by the history. A report that
// starts from a snapshot says in its audit-integrity check that the chain
// before the snapshot and the signed checkpoints were not re-read (keyledger
// audit verify does that); Compliance with full set (report compliance
// --full) folds and verifies everything. Two costs
// are not history's but still show: within ten seconds of the last write,
// opening an embedded store rebuilds JetStream's duplicate window (the
// ledger stream's 10-second Duplicates), loading those seconds of
// messages; and the tail's fold, about 30–40 µs of CPU per event on a loaded 2-core
// machine (JSON parsing is about 75 % of it), so a tail near the
// 100,000-event snapshot interval costs seconds.
//
// The package reads only and never holds key material. A Source is used by
// one goroutine at a time.
package history

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"time"

	"github.com/keyledger/keyledger/gateway/node"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/checkpoint"
	"github.com/keyledger/keyledger/ledger/snapshot"
	"github.com/keyledger/keyledger/ledger/writer"
	"github.com/keyledger/keyledger/projections/resume"
)

// Source is a deployment's ledger and what vouches for it.
type Source struct {
	Ledger      *ledger.Ledger    // opened; read only
	Snapshots   *snapshot.Store   // nil: none stored
	Checkpoints *checkpoint.Store // nil: none stored
	// Verifier is the checkpoint verifier key (note vkey), "" when there
	// is none; VerifierFile names where it was read from, in answers.
	Verifier, VerifierFile string
	// Own is the data directory's own writer key, trusted to sign
	// snapshots; nil beside running instances.
	Own *writer.Key
	// Log gets a warning for every snapshot skipped; nil discards them.
	Log *slog.Logger

	named   map[string]ed25519.PublicKey // the checkpoint's writers, read once
	known   map[string]string            // and those with the revoked ones
	revoked map[string]string            // the revoked ones alone
}

// checkpointWriters are the writers the newest checkpoint that verifies
// with the Verifier names, read once (and, in s.known, with the revoked
// writers it names). A writer is only ever registered, or revoked and
// then named as revoked, so the newest checkpoint knows every writer an
// older one does: reading it alone keeps this cost flat however many
// checkpoints the ledger holds (one a second under load). A revoked
// writer signs no snapshot this trusts.
func (s *Source) checkpointWriters(ctx context.Context) map[string]ed25519.PublicKey {
	if s.named != nil {
		return s.named
	}
	s.named, s.known = map[string]ed25519.PublicKey{}, map[string]string{}
	if s.Verifier == "" || s.Checkpoints == nil {
		return s.named
	}
	// The newest that verifies (as start-up reads it): a newer message
	// signed by another instance's key, or garbage, is skipped.
	cp, _, err := s.Checkpoints.Newest(ctx, s.Verifier)
	if err != nil {
		return s.named
	}
	for id, text := range cp.Writers() {
		if pub, err := writer.ParsePublic(text); err == nil && writer.ID(pub) == id {
			s.named[id] = pub
		}
	}
	s.known, s.revoked = cp.Known(), cp.Revoked()
	return s.named
}

// CheckBase refuses a ledger that starts after removed segments unless the
// base's writers are those the newest signed checkpoint names (see
// ledger.Ledger.CheckBaseWriters).
func (s *Source) CheckBase(ctx context.Context) error {
	l := s.Ledger
	if l.FirstIndex() == 0 {
		return nil
	}
	named := s.checkpointWriters(ctx)
	if len(named) == 0 {
		return fmt.Errorf("the ledger starts at event %d after removed segments, and no signed checkpoint verifying with %s names its writers to vouch for that base",
			l.FirstIndex(), s.VerifierFile)
	}
	// A base from before a revocation names the revoked writer.
	return l.CheckBaseWriters(s.known, "the newest signed checkpoint")
}

// trusted is who may sign snapshots, and whether anyone may: the own
// writer key, else the checkpoint's writers (read only when needed). The
// own key is not trusted once the checkpoint names it revoked: a revoked
// key may be a thief's as well.
func (s *Source) trusted(ctx context.Context) (func(id string) ed25519.PublicKey, bool) {
	own := s.Own
	if own != nil {
		s.checkpointWriters(ctx)
		if _, gone := s.revoked[own.ID()]; gone {
			own = nil
		}
	}
	if own == nil && len(s.checkpointWriters(ctx)) == 0 {
		return nil, false
	}
	return func(id string) ed25519.PublicKey {
		if own != nil && own.ID() == id {
			return own.Public()
		}
		return s.checkpointWriters(ctx)[id]
	}, true
}

// image is the newest snapshot image of the projections whose events all
// happened at or before at (zero: the newest), signed by a trusted writer
// and matching the ledger; nil when there is none.
func (s *Source) image(ctx context.Context, at time.Time) *resume.Image {
	if s.Snapshots == nil {
		return nil
	}
	trusted, ok := s.trusted(ctx)
	if !ok {
		return nil
	}
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	im, err := node.ImageAt(ctx, s.Ledger, s.Snapshots, at, trusted, log)
	if err != nil {
		log.Warn("snapshots unreadable; folding the whole ledger", "error", err)
		return nil
	}
	return im
}
