package verify_test

import (
	"context"
	"errors"
	"testing"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/checkpoint"
	"github.com/keyledger/keyledger/ledger/internal/ledgertest"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/verify"
)

// store stores signed checkpoints, oldest first, in the deployment's
// checkpoint stream.
func store(t *testing.T, f *ledgertest.Ledger, signed ...[]byte) *checkpoint.Store {
	t.Helper()
	cps, err := checkpoint.Open(context.Background(), f.NC, ledger.DefaultStream, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range signed {
		if err := cps.Put(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	return cps
}

// Live checks the ledger against the newest checkpoint that verifies with
// the key, skipping (and counting) newer ones another key signed, and
// sees every message on its way.
func TestLiveExtendsTheNewestSignedCheckpoint(t *testing.T) {
	f := ledgertest.New(t, ledger.Config{}, 6)
	cps := store(t, f, f.Checkpoint(3, nil), f.Checkpoint(5, nil), f.Checkpoint(6, ledgertest.OtherSigner(t)))
	var seen uint64
	res, err := verify.Live(context.Background(), verify.Request{Ledger: f.Open(), Checkpoints: cps, Verifier: f.Vkey,
		Progress: func(_, events uint64) { seen += events }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Checkpoint == nil || res.Checkpoint.Size != 5 || res.Skipped != 1 {
		t.Fatalf("checked against %+v, %d skipped; want the size-5 checkpoint, the forged one skipped", res.Checkpoint, res.Skipped)
	}
	if h := res.Report.Head; h.Count != 6 || h.Hash != f.Recs[5].Hash || len(res.Report.Quarantined) > 0 || seen != 6 {
		t.Fatalf("report %+v, progress saw %d events", res.Report, seen)
	}

	// Without checkpoints there is nothing to extend: a truncated tail
	// cannot be told, and Live says so with a nil Checkpoint.
	res, err = verify.Live(context.Background(), verify.Request{Ledger: f.Open()})
	if err != nil || res.Checkpoint != nil || res.Report.Head.Count != 6 {
		t.Fatalf("without checkpoints: %+v, %v", res, err)
	}
}

// A ledger that does not extend its newest signed checkpoint (its tail
// cut off, or rewritten) fails verification; so, without the key, does a
// forged newest checkpoint, a false alarm that never hides a truncation.
// A quarantined message is reported, not a failure: the chain goes on.
func TestLiveFailures(t *testing.T) {
	ctx := context.Background()
	f := ledgertest.New(t, ledger.Config{}, 4)
	longer := ledgertest.New(t, ledger.Config{}, 6)
	// A checkpoint of 6 events, signed with f's key: f's tail was cut off.
	truncated := f.Checkpoint(4, nil)
	cp, err := merkle.Open(truncated, f.Vkey)
	if err != nil {
		t.Fatal(err)
	}
	cp.Size = 6
	cutOff, err := merkle.Sign(cp, f.Signer)
	if err != nil {
		t.Fatal(err)
	}
	_, err = verify.Live(ctx, verify.Request{Ledger: f.Open(), Checkpoints: store(t, f, cutOff), Verifier: f.Vkey})
	var failed *verify.FailedError
	var mismatch *checkpoint.MismatchError
	if !errors.As(err, &failed) || !errors.As(err, &mismatch) || !mismatch.Truncated() {
		t.Fatalf("a tail cut off: %v, want a FailedError for a truncation", err)
	}

	forged := longer.Checkpoint(4, ledgertest.OtherSigner(t)) // another ledger's root, another key
	g := ledgertest.New(t, ledger.Config{}, 4)
	cps := store(t, g, g.Checkpoint(4, nil), forged)
	if _, err := verify.Live(ctx, verify.Request{Ledger: g.Open(), Checkpoints: cps, Verifier: g.Vkey}); err != nil {
		t.Fatalf("with the key the forged checkpoint is skipped: %v", err)
	}
	if _, err := verify.Live(ctx, verify.Request{Ledger: g.Open(), Checkpoints: cps}); !errors.As(err, &failed) {
		t.Fatalf("without the key the forged newest checkpoint is a false alarm: %v", err)
	}

	g.Forge([]byte("not a message any writer signed"))
	res, err := verify.Live(ctx, verify.Request{Ledger: g.Open(), Checkpoints: cps, Verifier: g.Vkey})
	if err != nil || len(res.Report.Quarantined) != 1 || res.Report.Head.Count != 4 {
		t.Fatalf("a forged message: %+v, %v; want it quarantined and the chain intact", res.Report, err)
	}
}

// A checkpoint store that cannot be read is an error, not a verdict.
func TestLiveCheckpointStoreUnreadable(t *testing.T) {
	f := ledgertest.New(t, ledger.Config{}, 2)
	broken := errors.New("stream unreadable")
	_, err := verify.Live(context.Background(), verify.Request{Ledger: f.Open(), Checkpoints: failing{broken}})
	if !errors.Is(err, broken) || errors.As(err, new(*verify.FailedError)) {
		t.Fatalf("Live = %v, want the store's error and no verdict", err)
	}
	if _, err := verify.Live(context.Background(), verify.Request{Ledger: f.Open(), Checkpoints: failing{checkpoint.ErrNone}}); err != nil {
		t.Fatalf("no checkpoint stored: %v", err)
	}
}

type failing struct{ err error }

func (f failing) Newest(context.Context, string) (merkle.Checkpoint, int, error) {
	return merkle.Checkpoint{}, 0, f.err
}
