package keyservice_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	ks "github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/ledger/event"
)

// The instance events encode and decode as the bodies the ledger's fold
// (WriterRegistered) and the projections (PrincipalsConfigured) read.
func TestInstanceEvents(t *testing.T) {
	now := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		ev   *event.Event
		op   string
		body event.Body
	}{
		{ks.WriterRegistration(now, "eu-west-1", "w2", "cHVi", "w1"), "RegisterWriter",
			&event.WriterRegistered{WriterID: "w2", PublicKey: "cHVi", RegisteredBy: "w1"}},
		{ks.PrincipalsConfiguration(now, "eu-west-1", "2 principals", "abcd"), "UpdatePrincipals",
			&event.PrincipalsConfigured{Summary: "2 principals", Hash: "abcd"}},
	} {
		got, err := event.Decode(tc.ev.AppendEncoded(nil))
		if err != nil {
			t.Fatalf("%s: %v", tc.op, err)
		}
		if got.Operation != tc.op || got.Region != "eu-west-1" || !got.Time.Equal(now) || got.Actor != nil {
			t.Errorf("%s: envelope %+v", tc.op, got)
		}
		if diff := cmp.Diff(tc.body, got.Body); diff != "" {
			t.Errorf("%s: body (-want +got):\n%s", tc.op, diff)
		}
	}
}
