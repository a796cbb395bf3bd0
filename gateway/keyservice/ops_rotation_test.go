package keyservice_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	ks "github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/projections/keystate"
)

// TestRotation rotates on demand and automatically on the fake clock: new
// encryptions use the new material, old ciphertexts still decrypt.
func TestRotation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id := f.createKey(t, nil)
	k := f.key(t, id)
	first := k.CurrentMaterial().ID
	old := f.encrypt(t, alice, id, []byte("old"), nil)

	if _, err := f.svc.RotateKeyOnDemand(ctx, alice, &ks.KeyIDInput{KeyId: id}); err != nil {
		t.Fatal(err)
	}
	k = f.key(t, id)
	second := k.CurrentMaterial()
	if second.ID == first || second.RotationType != "ON_DEMAND" || k.OnDemandRotations != 1 {
		t.Fatalf("after RotateKeyOnDemand: current %+v, %d on-demand rotations", second, k.OnDemandRotations)
	}
	fresh := f.encrypt(t, alice, id, []byte("new"), nil)
	for _, c := range []struct {
		blob         []byte
		pt, material string
	}{{old, "old", first}, {fresh, "new", second.ID}} {
		out, err := f.svc.Decrypt(ctx, alice, &ks.DecryptInput{CiphertextBlob: c.blob})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Plaintext, []byte(c.pt)) || out.KeyMaterialId != c.material {
			t.Errorf("Decrypt: %q under %s, want %q under %s", out.Plaintext, out.KeyMaterialId, c.pt, c.material)
		}
	}

	if _, err := f.svc.EnableKeyRotation(ctx, alice, &ks.EnableKeyRotationInput{KeyId: id, RotationPeriodInDays: ptr(int32(90))}); err != nil {
		t.Fatal(err)
	}
	status, err := f.svc.GetKeyRotationStatus(ctx, alice, &ks.KeyIDInput{KeyId: id})
	if err != nil {
		t.Fatal(err)
	}
	next := t0.Add(90 * 24 * time.Hour)
	want := &ks.GetKeyRotationStatusOutput{KeyRotationEnabled: true, KeyId: "arn:aws:kms:us-east-1:111122223333:key/" + id,
		RotationPeriodInDays: ptr(90), NextRotationDate: ptr(ks.EpochTime(next))}
	if diff := cmp.Diff(want, status, epochTimes); diff != "" {
		t.Fatalf("GetKeyRotationStatus (-want +got):\n%s", diff)
	}

	f.clock.advance(90*24*time.Hour - time.Second)
	if err := f.svc.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	if k := f.key(t, id); len(k.Materials) != 2 {
		t.Fatalf("rotated early: %d materials", len(k.Materials))
	}
	f.clock.advance(time.Second)
	if err := f.svc.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	k = f.key(t, id)
	if cur := k.CurrentMaterial(); len(k.Materials) != 3 || cur.RotationType != "AUTOMATIC" || !k.NextRotation.Equal(next.Add(90*24*time.Hour)) {
		t.Fatalf("after the automatic rotation: %d materials, current %+v, next rotation %s", len(k.Materials), cur, k.NextRotation)
	}
	if ev := f.ledger.last(t); ev.Operation != "RotateKey" {
		t.Errorf("the automatic rotation was recorded as %s, want RotateKey", ev.Operation)
	}
}

func TestRotationRefusals(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	sym := f.createKey(t, nil)
	mac := f.createKey(t, &ks.CreateKeyInput{KeySpec: "HMAC_256", KeyUsage: "GENERATE_VERIFY_MAC"})
	external := f.createKey(t, &ks.CreateKeyInput{Origin: "EXTERNAL"})
	disabled := f.createKey(t, nil)
	if _, err := f.svc.DisableKey(ctx, alice, &ks.KeyIDInput{KeyId: disabled}); err != nil {
		t.Fatal(err)
	}
	enable := func(id string, days int32) func() error {
		return func() error {
			_, err := f.svc.EnableKeyRotation(ctx, alice, &ks.EnableKeyRotationInput{KeyId: id, RotationPeriodInDays: &days})
			return err
		}
	}
	onDemand := func(id string) func() error {
		return func() error { _, err := f.svc.RotateKeyOnDemand(ctx, alice, &ks.KeyIDInput{KeyId: id}); return err }
	}
	tests := []struct {
		name string
		op   string
		do   func() error
		code ks.Code
	}{
		{"period too short", "EnableKeyRotation", enable(sym, 89), ks.CodeValidation},
		{"period too long", "EnableKeyRotation", enable(sym, 2561), ks.CodeValidation},
		{"HMAC key", "EnableKeyRotation", enable(mac, 365), ks.CodeUnsupportedOperation},
		{"imported material", "EnableKeyRotation", enable(external, 365), ks.CodeUnsupportedOperation},
		{"disabled key", "EnableKeyRotation", enable(disabled, 365), ks.CodeDisabled},
		{"on demand, HMAC key", "RotateKeyOnDemand", onDemand(mac), ks.CodeUnsupportedOperation},
		{"on demand, disabled key", "RotateKeyOnDemand", onDemand(disabled), ks.CodeDisabled},
		{"on demand, unauthorized", "RotateKeyOnDemand", func() error {
			_, err := f.svc.RotateKeyOnDemand(ctx, bob, &ks.KeyIDInput{KeyId: sym})
			return err
		}, ks.CodeAccessDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := codeOf(tt.do()); got != tt.code {
				t.Fatalf("code %q, want %q", got, tt.code)
			}
			f.checkRecorded(t, tt.op, tt.code)
		})
	}
	if k := f.key(t, sym); k.RotationPeriodDays != 0 || len(k.Materials) != 1 {
		t.Errorf("refusals changed the key: rotation period %d, %d materials", k.RotationPeriodDays, len(k.Materials))
	}
}

// TestOnDemandRotationLimit checks AWS's limit of 25 on-demand rotations.
func TestOnDemandRotationLimit(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id := f.createKey(t, nil)
	for i := range 25 {
		if _, err := f.svc.RotateKeyOnDemand(ctx, alice, &ks.KeyIDInput{KeyId: id}); err != nil {
			t.Fatalf("rotation %d: %v", i+1, err)
		}
	}
	_, err := f.svc.RotateKeyOnDemand(ctx, alice, &ks.KeyIDInput{KeyId: id})
	if got := codeOf(err); got != ks.CodeLimitExceeded {
		t.Fatalf("rotation 26: %q, want %q", got, ks.CodeLimitExceeded)
	}
	if k := f.key(t, id); len(k.Materials) != 26 || k.State != keystate.Enabled {
		t.Errorf("%d materials, state %s; want 26, Enabled", len(k.Materials), k.State)
	}
}
