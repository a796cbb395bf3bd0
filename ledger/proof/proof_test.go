package proof_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/internal/ledgertest"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/proof"
)

// The proofs check, with tlog, against the root a signed checkpoint of
// the same size carries; a proof past the tree is an error.
func TestProofsCheckAgainstSignedRoots(t *testing.T) {
	f := ledgertest.New(t, ledger.Config{}, 7)
	ctx := context.Background()
	cp5, err := merkle.Open(f.Checkpoint(5, nil), f.Vkey)
	if err != nil {
		t.Fatal(err)
	}
	cp7, _ := merkle.Open(f.Checkpoint(7, nil), f.Vkey)

	in, err := proof.Include(ctx, f.Open(), 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	if in.Root != cp5.Root || !bytes.Equal(in.Event, f.Recs[3].Raw) || in.LeafHash != tlog.RecordHash(f.Recs[3].Raw) {
		t.Fatalf("inclusion of event 3 in 5: %+v", in)
	}
	if err := tlog.CheckRecord(in.Proof, 5, cp5.Root, 3, in.LeafHash); err != nil {
		t.Fatalf("the inclusion proof does not check: %v", err)
	}
	whole, err := proof.Include(ctx, f.Open(), 6, 0)
	if err != nil || whole.Size != 7 || tlog.CheckRecord(whole.Proof, 7, cp7.Root, 6, whole.LeafHash) != nil {
		t.Fatalf("inclusion of the last event in the whole ledger: %+v, %v", whole, err)
	}

	ext, err := proof.Extend(ctx, f.Open(), 5, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ext.OldRoot != cp5.Root || ext.NewRoot != cp7.Root || ext.NewSize != 7 {
		t.Fatalf("consistency 5 → whole: %+v", ext)
	}
	if err := tlog.CheckTree(ext.Proof, 7, cp7.Root, 5, cp5.Root); err != nil {
		t.Fatalf("the consistency proof does not check: %v", err)
	}

	if _, err := proof.Include(ctx, f.Open(), 7, 0); err == nil {
		t.Error("an inclusion proof of an event past the tree")
	}
	if _, err := proof.Extend(ctx, f.Open(), 6, 5); err == nil {
		t.Error("a consistency proof from a larger tree")
	}
}

// The proofs' JSON is what audit prove printed before it used them: the
// same members, in the same (sorted) order.
func TestProofJSON(t *testing.T) {
	f := ledgertest.New(t, ledger.Config{}, 3)
	in, err := proof.Include(context.Background(), f.Open(), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(in)
	want, _ := json.Marshal(map[string]any{"index": in.Index, "size": in.Size, "root": in.Root, "leafHash": in.LeafHash,
		"event": in.Event, "proof": in.Proof})
	if !bytes.Equal(got, want) {
		t.Fatalf("inclusion JSON\n%s\nwant\n%s", got, want)
	}
	ext, err := proof.Extend(context.Background(), f.Open(), 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = json.Marshal(ext)
	want, _ = json.Marshal(map[string]any{"oldSize": ext.OldSize, "newSize": ext.NewSize, "oldRoot": ext.OldRoot, "newRoot": ext.NewRoot, "proof": ext.Proof})
	if !bytes.Equal(got, want) {
		t.Fatalf("consistency JSON\n%s\nwant\n%s", got, want)
	}
}
