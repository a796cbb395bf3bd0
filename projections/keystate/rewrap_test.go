package keystate

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyledger/keyledger/ledger/event"
)

func TestFoldMaterialRewrapped(t *testing.T) {
	s := New()
	s.Apply([]event.Record{
		rec(0, "k1", &event.KeyCreated{KeySpec: "SYMMETRIC_DEFAULT", KeyUsage: "ENCRYPT_DECRYPT", Origin: "AWS_KMS",
			Material: event.MaterialRef{ID: "m1", WrappedHash: "h1"}}, nil),
		rec(1, "k1", &event.ImportParametersIssued{TokenID: "t", ValidTo: t0.Add(24 * time.Hour),
			WrappingKey: event.MaterialRef{ID: "w1", WrappedHash: "wh1"}}, nil),
		rec(2, "k1", &event.MaterialRewrapped{Material: event.MaterialRef{ID: "m1", WrappedHash: "h2"}, PreviousHash: "h1", RootVersion: 2}, nil),
		rec(3, "k1", &event.MaterialRewrapped{Material: event.MaterialRef{ID: "w1", WrappedHash: "wh2"}, PreviousHash: "wh1", RootVersion: 2}, nil),
		rec(4, "k1", &event.MaterialRewrapped{Material: event.MaterialRef{ID: "nope", WrappedHash: "x"}}, nil), // unknown: no effect
	})
	k, _ := s.Key("k1")
	if diff := cmp.Diff([]Material{{ID: "m1", WrappedHash: "h2", PreviousHash: "h1", Created: t0}}, k.Materials); diff != "" {
		t.Errorf("materials (-want +got):\n%s", diff)
	}
	tok := k.ImportTokens["t"]
	if tok.WrappingKey.WrappedHash != "wh2" || tok.PreviousWrappingHash != "wh1" {
		t.Errorf("wrapping key after rewrap: %+v", tok)
	}
}
