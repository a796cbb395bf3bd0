package keyservice_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/keyledger/keyledger/crypto/secret"
	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/projections/policy"
)

const seedKeyID = "49ae195b-c089-47b6-a22e-85050f7576d2"

func seedInput(known bool) *keyservice.SeedInput {
	return &keyservice.SeedInput{Account: account, FileHash: "f00d", KnownMaterial: known, Keys: []keyservice.SeedKey{{
		Entry: "keys[0]", KeyID: seedKeyID, Description: ptr("seeded"), Aliases: []string{"alias/seeded"},
		Material: secret.New([]byte("0123456789abcdef0123456789abcdef")),
	}}}
}

// TestSeedOnlyForTheOperator: seeding is service-wide; the operator
// account's principal allowed keyledger:Seed may, others are refused and
// recorded, with nothing created.
func TestSeedOnlyForTheOperator(t *testing.T) {
	ops := keyservice.Caller{AccessKeyID: "AKIAOPS", PrincipalARN: "arn:aws:iam::" + account + ":user/ops", Account: account,
		Identity: []*policy.Document{mustParse(`{"Version":"2012-10-17","Statement":[
			{"Effect":"Allow","Action":["kms:*","keyledger:Seed"],"Resource":"*"}]}`)}}
	f := newFixture(t)
	f.cfg.OperatorAccount = account
	f.restart()
	ctx := context.Background()
	if _, err := f.svc.Seed(ctx, alice, seedInput(true)); codeOf(err) != keyservice.CodeAccessDenied {
		t.Fatalf("alice (no keyledger:Seed): %v", err)
	}
	f.checkRecorded(t, "Seed", keyservice.CodeAccessDenied)
	if _, ok := f.state.Key(seedKeyID); ok {
		t.Fatal("a refused seed created its key")
	}
	out, err := f.svc.Seed(ctx, ops, seedInput(true))
	if err != nil || len(out.Keys) != 1 || !out.Keys[0].Created {
		t.Fatalf("the operator's seed: %+v %v", out, err)
	}
	f.checkRecorded(t, "Seed", "")
	var created *event.Event
	for _, r := range f.ledger.records() {
		if r.Event.Operation == "CreateKey" {
			created = r.Event
		}
	}
	b := created.Body.(*event.KeyCreated)
	if created.KeyID != seedKeyID || created.Actor == nil || created.Actor.PrincipalARN != ops.PrincipalARN ||
		b.Seed == nil || b.Seed.FileHash != "f00d" || !b.Seed.KnownMaterial || b.Material.ID == "" {
		t.Fatalf("the seeded CreateKey: %+v %+v", created, b)
	}
	// The material is the file's: a ciphertext made now decrypts after a
	// restart (cache empty) through the stored, wrapped copy.
	ct := f.encrypt(t, alice, "alias/seeded", []byte("hello"), nil)
	f.restart()
	dec, err := f.svc.Decrypt(ctx, alice, &keyservice.DecryptInput{CiphertextBlob: ct})
	if err != nil || string(dec.Plaintext) != "hello" {
		t.Fatalf("decrypt after restart: %v", err)
	}
}

// TestSeedWithoutKnownMaterialMode refuses an AWS_KMS key's material and
// records the refusal; an append that fails leaves nothing half-seeded
// that a second seed would not complete.
func TestSeedWithoutKnownMaterialMode(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, err := f.svc.SeedAtStart(ctx, seedInput(false))
	if codeOf(err) != keyservice.CodeValidation {
		t.Fatalf("known material outside development mode: %v", err)
	}
	f.checkRecorded(t, "Seed", keyservice.CodeValidation)
	if ev := f.ledger.last(t); ev.Actor != nil || ev.KeyID != seedKeyID {
		t.Fatalf("a seed at start is a service event about the entry's key: %+v", ev)
	}

	f.ledger.fail = errors.New("ledger down")
	if _, err := f.svc.SeedAtStart(ctx, seedInput(true)); codeOf(err) != keyservice.CodeInternal {
		t.Fatalf("with the ledger failing: %v", err)
	}
	f.ledger.fail = nil
	var stored []byte // the failed seed's copy, which the event may yet commit to
	for _, w := range f.mats.wrapped {
		stored = append([]byte(nil), w...)
	}
	if len(f.mats.wrapped) != 1 {
		t.Fatalf("%d materials stored by the failed seed", len(f.mats.wrapped))
	}
	out, err := f.svc.SeedAtStart(ctx, seedInput(true))
	if err != nil || !out.Keys[0].Created {
		t.Fatalf("seed again: %+v %v", out, err)
	}
	k := f.key(t, seedKeyID)
	m := k.CurrentMaterial()
	if !bytes.Equal(f.mats.wrapped[m.ID], stored) {
		t.Fatal("the second seed replaced the stored copy instead of reusing it")
	}
	again, err := f.svc.SeedAtStart(ctx, seedInput(true))
	if err != nil || again.Keys[0].Created || len(again.Keys[0].Changes) != 0 {
		t.Fatalf("a third seed: %+v %v", again, err)
	}
}
