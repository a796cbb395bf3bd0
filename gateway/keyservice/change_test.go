package keyservice_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	ks "github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/projections/keystate"
)

// TestLostRacesAreRetriedInside: a change that loses its race to another
// instance is validated and appended again inside the service; the caller
// sees its answer, never the race. One that loses every time gets
// ThrottlingException (retryable), and nothing of it is recorded.
func TestLostRacesAreRetriedInside(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id := f.createKey(t, nil)
	before := len(f.ledger.records())
	f.ledger.lose = 3
	if _, err := f.svc.DisableKey(ctx, alice, &ks.KeyIDInput{KeyId: id}); err != nil {
		t.Fatalf("a change that lost three races: %v", err)
	}
	if got := len(f.ledger.records()) - before; got != 1 || f.key(t, id).State != keystate.Disabled {
		t.Fatalf("%d events recorded, state %s; want one KeyDisabled", got, f.key(t, id).State)
	}
	f.ledger.lose = 1000
	_, err := f.svc.EnableKey(ctx, alice, &ks.KeyIDInput{KeyId: id})
	var e *ks.Error
	if !errors.As(err, &e) || e.Code != ks.CodeThrottling {
		t.Fatalf("a change that lost every race: %v, want ThrottlingException", err)
	}
	if got := len(f.ledger.records()) - before; got != 1 || f.key(t, id).State != keystate.Disabled {
		t.Fatalf("%d events recorded after the lost change, state %s", got, f.key(t, id).State)
	}
	f.ledger.lose = 0
}

// TestChangesAreFencedOnWhatTheyRead: every change (and every refusal of
// one: it is an answer about the state too) names the partitions of what
// it read: its key (also one that does not exist), the alias, the key an
// alias points to or left.
func TestChangesAreFencedOnWhatTheyRead(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	k1, k2 := f.createKey(t, nil), f.createKey(t, nil)
	key := func(id string) string { return "key/" + id }
	alias := "alias/" + account + "/alias/app"
	missing := "11111111-2222-3333-4444-555555555555"
	tests := []struct {
		name string
		op   func() error
		want []string
	}{
		{"DisableKey", func() error {
			_, err := f.svc.DisableKey(ctx, alice, &ks.KeyIDInput{KeyId: k1})
			return err
		}, []string{key(k1)}},
		{"DisableKey of a key that does not exist", func() error {
			_, err := f.svc.DisableKey(ctx, alice, &ks.KeyIDInput{KeyId: missing})
			return err
		}, []string{key(missing)}},
		{"CreateAlias", func() error {
			_, err := f.svc.CreateAlias(ctx, alice, &ks.AliasInput{AliasName: "alias/app", TargetKeyId: k1})
			return err
		}, []string{key(k1), alias}},
		{"CreateAlias of a name taken (by k1's alias)", func() error {
			_, err := f.svc.CreateAlias(ctx, alice, &ks.AliasInput{AliasName: "alias/app", TargetKeyId: k2})
			return err
		}, []string{key(k2), alias, key(k1)}},
		{"UpdateAlias from k1 to k2", func() error {
			_, err := f.svc.UpdateAlias(ctx, alice, &ks.AliasInput{AliasName: "alias/app", TargetKeyId: k2})
			return err
		}, []string{key(k2), alias, key(k1)}},
		{"DeleteAlias", func() error {
			_, err := f.svc.DeleteAlias(ctx, alice, &ks.DeleteAliasInput{AliasName: "alias/app"})
			return err
		}, []string{key(k2), alias}},
		{"CreateGrant", func() error {
			_, err := f.svc.CreateGrant(ctx, alice, &ks.CreateGrantInput{KeyId: k2, GranteePrincipal: bob.PrincipalARN, Operations: []string{"Encrypt"}})
			return err
		}, []string{key(k2)}},
	}
	for _, tt := range tests {
		n := len(f.ledger.changes)
		err := tt.op()
		var e *ks.Error
		if err != nil && !errors.As(err, &e) {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if len(f.ledger.changes) != n+1 {
			t.Fatalf("%s: %d changes appended, want 1", tt.name, len(f.ledger.changes)-n)
		}
		if diff := cmp.Diff(tt.want, f.ledger.changes[n]); diff != "" {
			t.Errorf("%s: partition keys (-want +got):\n%s", tt.name, diff)
		}
	}
	// Cryptographic operations are recorded on the data chain, unfenced.
	n := len(f.ledger.changes)
	f.encrypt(t, alice, k2, []byte("x"), nil)
	if len(f.ledger.changes) != n {
		t.Fatal("Encrypt was appended as a change")
	}
}
