package keyservice_test

import (
	"context"
	"fmt"
	"testing"

	ks "github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/ledger/event"
)

// BenchmarkListKeys is ListKeys with Limit=1 at 20,000 keys (the issue's
// 41 ms before the keys were indexed).
func BenchmarkListKeys(b *testing.B) {
	f := newFixture(&testing.T{})
	for p := range 20000 {
		f.state.Apply([]event.Record{{Event: &event.Event{Index: uint64(p), Account: alice.Account, KeyID: fmt.Sprintf("k-%05d", p),
			Body: &event.KeyCreated{KeySpec: "SYMMETRIC_DEFAULT", Material: event.MaterialRef{ID: fmt.Sprint(p)}}}}})
	}
	one := int32(1)
	b.ResetTimer()
	for range b.N {
		out, err := f.svc.ListKeys(context.Background(), alice, &ks.ListInput{Limit: &one})
		if err != nil || len(out.Keys) != 1 {
			b.Fatal(err)
		}
	}
}
