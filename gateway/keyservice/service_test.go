package keyservice_test

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	ks "github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/projections/keystate"
)

// TestReplayRebuildsState runs a mix of requests, then replays the events'
// stored bytes as a restarting node does: they link into one chain, and
// folding them rebuilds exactly the state the service built live.
func TestReplayRebuildsState(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id := f.createKey(t, &ks.CreateKeyInput{Description: ptr("replayed"), Tags: []ks.Tag{{TagKey: ptr("team"), TagValue: ptr("a")}}})
	mac := f.createKey(t, &ks.CreateKeyInput{KeySpec: "HMAC_256", KeyUsage: "GENERATE_VERIFY_MAC"})
	doomed := f.createKey(t, nil)
	blob := f.encrypt(t, alice, id, []byte("x"), nil)
	steps := []func() error{
		func() error { _, err := f.svc.Decrypt(ctx, alice, &ks.DecryptInput{CiphertextBlob: blob}); return err },
		func() error { _, err := f.svc.Decrypt(ctx, bob, &ks.DecryptInput{CiphertextBlob: blob}); return err }, // refused
		func() error { _, err := f.svc.RotateKeyOnDemand(ctx, alice, &ks.KeyIDInput{KeyId: id}); return err },
		func() error {
			_, err := f.svc.CreateAlias(ctx, alice, &ks.AliasInput{AliasName: "alias/r", TargetKeyId: id})
			return err
		},
		func() error {
			_, err := f.svc.CreateGrant(ctx, alice, &ks.CreateGrantInput{KeyId: id, GranteePrincipal: bob.PrincipalARN, Operations: []string{"Encrypt"}})
			return err
		},
		func() error {
			_, err := f.svc.GenerateMac(ctx, alice, &ks.MacInput{KeyId: mac, Message: []byte("m"), MacAlgorithm: "HMAC_SHA_256"})
			return err
		},
		func() error { _, err := f.svc.DisableKey(ctx, alice, &ks.KeyIDInput{KeyId: mac}); return err },
		func() error {
			_, err := f.svc.ScheduleKeyDeletion(ctx, alice, &ks.ScheduleKeyDeletionInput{KeyId: doomed, PendingWindowInDays: ptr(int32(7))})
			return err
		},
	}
	for i, step := range steps {
		if err := step(); err != nil && i != 1 {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	f.clock.advance(8 * 24 * time.Hour)
	if err := f.svc.RunDue(ctx); err != nil {
		t.Fatal(err)
	}

	linker := chain.NewLinker(chain.Head{})
	replayed := keystate.New()
	for _, r := range f.ledger.records() {
		h, err := linker.Link(r.Seq, r.Raw)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := event.Decode(r.Raw)
		if err != nil {
			t.Fatal(err)
		}
		replayed.Apply([]event.Record{{Seq: r.Seq, Event: ev, Raw: r.Raw, Hash: h}})
	}
	if diff := cmp.Diff(f.state.Snapshot(), replayed.Snapshot()); diff != "" {
		t.Fatalf("replayed state differs (-live +replayed):\n%s", diff)
	}
	if _, ok := replayed.Key(doomed); ok {
		t.Error("the replay lost the deletion")
	}
}

// TestNewIDIsAVersion4UUID: request and key ids are random version 4
// UUIDs in their canonical text form.
func TestNewIDIsAVersion4UUID(t *testing.T) {
	form := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := ks.NewID()
		if !form.MatchString(id) || seen[id] {
			t.Fatalf("NewID() = %q (seen before: %v)", id, seen[id])
		}
		seen[id] = true
	}
}
