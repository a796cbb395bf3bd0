package history

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keyledger/keyledger/gateway/node"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/checkpoint"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/projections/compliance"
	"github.com/keyledger/keyledger/projections/keystate"
	"github.com/keyledger/keyledger/projections/resume"
)

// Compliance makes the compliance report: from the newest trusted
// snapshot and the events after it (the report says the chain before it
// and the checkpoints were not re-read), or with full, or without a
// snapshot, from the whole ledger, verifying the whole chain and every
// signed checkpoint. It refuses a ledger whose base no checkpoint vouches
// for (CheckBase).
func Compliance(ctx context.Context, s *Source, opts compliance.Options, full bool) (*compliance.Report, error) {
	if err := s.CheckBase(ctx); err != nil {
		return nil, err
	}
	if !full {
		if im := s.image(ctx, time.Time{}); im != nil {
			return fromSnapshot(ctx, s.Ledger, im, opts).Report(), nil
		}
	}
	return fromLedger(ctx, s, opts).Report(), nil
}

// fromSnapshot continues the snapshot's key state and compliance
// aggregates with the events after it (authenticated and linked to the
// snapshot's event). The chain before the snapshot and the signed
// checkpoints are not re-read: the report says so, as a live instance's
// does while its background verifier runs.
func fromSnapshot(ctx context.Context, l *ledger.Ledger, im *resume.Image, opts compliance.Options) *compliance.Builder {
	state, agg := keystate.Restore(im.Keys), compliance.RestoreAggregates(im.Compliance)
	at, _ := node.ResumeAt(im) // writers checked with the snapshot
	head, err := l.ReplayFrom(ctx, at, func(r event.Record) error {
		recs := []event.Record{r}
		state.Apply(recs)
		agg.Apply(recs)
		return nil
	})
	integrity := &compliance.Integrity{Events: head.Count, Head: head.Hash.String(),
		Pending: fmt.Sprintf("answered from the snapshot of the first %d events and the %d events after it, which linked to it; "+
			"keyledger audit verify (or report compliance --full) verifies the whole chain and the signed checkpoints",
			im.Head.Count, head.Count-im.Head.Count)}
	if err != nil {
		integrity.Problem = err.Error()
	}
	integrity.Quarantined, integrity.QuarantineReasons = l.Quarantined(), l.QuarantineReasons()
	b := compliance.NewLiveBuilder(opts, state, agg)
	b.SetIntegrity(integrity)
	return b
}

// fromLedger folds the whole ledger, linking every event, and verifies
// every signed checkpoint against the Merkle tree it rebuilds.
func fromLedger(ctx context.Context, s *Source, opts compliance.Options) *compliance.Builder {
	l := s.Ledger
	var tree merkle.Tree
	builder := compliance.NewBuilder(opts)
	integrity := &compliance.Integrity{}
	head, err := l.Replay(ctx, chain.Head{}, func(r event.Record) error {
		builder.Add(r)
		return tree.Append(r.Raw)
	})
	switch first := l.FirstIndex(); {
	case err != nil:
		integrity.Problem = err.Error()
	case first > 0:
		integrity.Problem = fmt.Sprintf("the live ledger starts at event %d after removed (archived) segments: this report covers the events from there on", first)
	default:
		integrity.ChainVerified, integrity.Events, integrity.Head = true, head.Count, head.Hash.String()
	}
	integrity.Quarantined, integrity.QuarantineReasons = l.Quarantined(), l.QuarantineReasons()
	switch {
	case integrity.Problem != "":
	case s.Verifier == "":
		integrity.Problem = "no checkpoint verifier key (" + s.VerifierFile + "); checkpoints not checked"
	case s.Checkpoints != nil:
		signed, err := s.Checkpoints.All(ctx)
		if err == nil {
			integrity.CheckpointsVerified, err = merkle.VerifyCheckpoints(signed, s.Verifier, tree.Root)
			if err != nil {
				integrity.Problem = err.Error()
			}
		} else if !errors.Is(err, checkpoint.ErrNone) {
			integrity.Problem = err.Error()
		}
	}
	builder.SetIntegrity(integrity)
	return builder
}
