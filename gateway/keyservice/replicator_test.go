package keyservice_test

import (
	"context"
	"crypto/ed25519"
	"sync"
	"testing"
	"time"

	"github.com/keyledger/keyledger/crypto/regionkey"
	"github.com/keyledger/keyledger/crypto/rootkey"
	ks "github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/replication"
	"github.com/keyledger/keyledger/ledger/writer"
)

// memLink queues what a region publishes for the region it names; pump
// hands the queued messages to their replicators, as the inbox would.
type memLink struct {
	region string
	net    *memNet
}

type memNet struct {
	mu    sync.Mutex
	queue []replication.Message
	drop  map[string]bool // regions cut off: their messages wait
}

func (l *memLink) Publish(_ context.Context, to, kind, key string, data []byte) error {
	l.net.mu.Lock()
	defer l.net.mu.Unlock()
	l.net.queue = append(l.net.queue, replication.Message{From: l.region, To: to, Kind: kind, Key: key,
		Data: append([]byte(nil), data...), Stored: time.Now()})
	return nil
}

func (l *memLink) Erase(context.Context, string, string, string) error { return nil }

func (l *memLink) Receive(ctx context.Context, _ func(context.Context, replication.Message) error) error {
	<-ctx.Done()
	return nil
}

// regionPair is two services, one per region, replicating over a memNet.
type regionPair struct {
	net  *memNet
	svcs map[string]*ks.Service
	reps map[string]*ks.Replicator
	regs map[string]*fixture
}

func newRegionPair(t *testing.T, regions ...string) *regionPair {
	t.Helper()
	p := &regionPair{net: &memNet{drop: map[string]bool{}}, svcs: map[string]*ks.Service{}, reps: map[string]*ks.Replicator{},
		regs: map[string]*fixture{}}
	w := writer.Generate()
	for _, region := range regions {
		f := newFixture(t)
		f.cfg.Region, f.cfg.RootKey = region, rootkey.Generate() // each region its own root key
		f.svc = ks.New(f.cfg)
		key, err := regionkey.Generate()
		if err != nil {
			t.Fatal(err)
		}
		peers := map[string][]ed25519.PublicKey{}
		for _, other := range regions {
			if other != region {
				peers[other] = []ed25519.PublicKey{w.Public()}
			}
		}
		p.reps[region] = f.svc.NewReplicator(ks.ReplicatorConfig{Link: &memLink{region: region, net: p.net}, Key: key, Writer: w,
			Peers: peers, ResendAfter: time.Hour})
		p.svcs[region], p.regs[region] = f.svc, f
	}
	return p
}

// settle runs every replicator's step and delivers messages until there
// is nothing left to deliver.
func (p *regionPair) settle(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for round := 0; round < 20; round++ {
		for _, r := range p.reps {
			r.Step(ctx)
		}
		p.net.mu.Lock()
		var deliver, keep []replication.Message
		for _, m := range p.net.queue {
			if p.net.drop[m.To] || p.net.drop[m.From] {
				keep = append(keep, m)
			} else {
				deliver = append(deliver, m)
			}
		}
		p.net.queue = keep
		p.net.mu.Unlock()
		if len(deliver) == 0 && round > 0 {
			return
		}
		for _, m := range deliver {
			if err := p.reps[m.To].Handle(ctx, m); err != nil {
				t.Fatalf("%s handling %s from %s: %v", m.To, m.Kind, m.From, err)
			}
		}
	}
	t.Fatal("replication did not settle")
}

// TestReplicatorAcrossRegions: regions with different root keys share a
// multi-Region key's material sealed to each other's replication keys; a
// region cut off gets what changed meanwhile when it returns, and a forged
// message changes nothing.
func TestReplicatorAcrossRegions(t *testing.T) {
	ctx := context.Background()
	p := newRegionPair(t, "us-east-1", "eu-west-1")
	us, eu := p.svcs["us-east-1"], p.svcs["eu-west-1"]
	out, err := us.CreateKey(ctx, alice, &ks.CreateKeyInput{MultiRegion: true})
	if err != nil {
		t.Fatal(err)
	}
	id := out.KeyMetadata.KeyId
	if _, err := us.ReplicateKey(ctx, alice, &ks.ReplicateKeyInput{KeyId: id, ReplicaRegion: "eu-west-1"}); err != nil {
		t.Fatal(err)
	}
	p.settle(t)
	enc, err := us.Encrypt(ctx, alice, &ks.EncryptInput{KeyId: id, Plaintext: []byte("across")})
	if err != nil {
		t.Fatal(err)
	}
	if dec, err := eu.Decrypt(ctx, alice, &ks.DecryptInput{CiphertextBlob: enc.CiphertextBlob}); err != nil || string(dec.Plaintext) != "across" {
		t.Fatalf("eu-west-1 decrypt: %v", err)
	}

	// eu-west-1 is cut off while the primary rotates twice: the primary
	// keeps its current material (the replica lacks the new one) and the
	// replica keeps serving; when the link returns, both move on.
	p.net.drop["eu-west-1"] = true
	cur := func(region string) string { k := p.regs[region].key(t, id); return k.CurrentMaterial().ID }
	before := cur("us-east-1")
	for range 2 {
		if _, err := us.RotateKeyOnDemand(ctx, alice, &ks.KeyIDInput{KeyId: id}); err != nil {
			t.Fatal(err)
		}
	}
	p.settle(t)
	if got := cur("us-east-1"); got != before {
		t.Fatalf("the primary used material the replica lacks: %s", got)
	}
	if _, err := eu.Encrypt(ctx, alice, &ks.EncryptInput{KeyId: id, Plaintext: []byte("x")}); err != nil {
		t.Fatalf("the cut-off replica stopped serving: %v", err)
	}
	p.net.drop["eu-west-1"] = false
	p.settle(t)
	if ek := p.regs["eu-west-1"].key(t, id); cur("us-east-1") == before || cur("eu-west-1") != cur("us-east-1") || len(ek.Materials) != 3 {
		t.Fatalf("after healing: us %s, eu %s (%d materials)", cur("us-east-1"), cur("eu-west-1"), len(ek.Materials))
	}

	// A message signed by a writer eu-west-1 does not trust: dropped.
	n := len(p.regs["eu-west-1"].ledger.records())
	forger := newRegionPair(t, "us-east-1", "eu-west-1") // another deployment's writer
	fo, _ := forger.svcs["us-east-1"].CreateKey(ctx, alice, &ks.CreateKeyInput{MultiRegion: true})
	if _, err := forger.svcs["us-east-1"].ReplicateKey(ctx, alice, &ks.ReplicateKeyInput{KeyId: fo.KeyMetadata.KeyId, ReplicaRegion: "eu-west-1"}); err != nil {
		t.Fatal(err)
	}
	forger.reps["us-east-1"].Step(ctx)
	for _, m := range forger.net.queue {
		if err := p.reps["eu-west-1"].Handle(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(p.regs["eu-west-1"].ledger.records()); got != n {
		t.Fatalf("a forged message was recorded (%d events, was %d)", got, n)
	}
	if _, ok := p.regs["eu-west-1"].state.Key(fo.KeyMetadata.KeyId); ok {
		t.Fatal("a forged replica exists")
	}
	var kinds []string
	for _, r := range p.regs["eu-west-1"].ledger.records() {
		if r.Event.KeyID == id {
			kinds = append(kinds, r.Event.Body.Type())
		}
	}
	if len(kinds) < 2 || kinds[0] != event.TypeReplicaKeyCreated || kinds[len(kinds)-1] != event.TypeMultiRegionKeySynchronized {
		t.Fatalf("eu-west-1 recorded %v", kinds)
	}
}

// TestReplicaDeletedAndMadeAgain: a replica deleted after its window is
// reported to the primary, which lists it no more; replicated to the same
// region again, it comes back with the same material, which the region's
// sweep of destroyed material leaves alone.
func TestReplicaDeletedAndMadeAgain(t *testing.T) {
	ctx := context.Background()
	p := newRegionPair(t, "us-east-1", "eu-west-1")
	us, eu := p.svcs["us-east-1"], p.svcs["eu-west-1"]
	out, err := us.CreateKey(ctx, alice, &ks.CreateKeyInput{MultiRegion: true})
	if err != nil {
		t.Fatal(err)
	}
	id := out.KeyMetadata.KeyId
	replicate := func() {
		t.Helper()
		if _, err := us.ReplicateKey(ctx, alice, &ks.ReplicateKeyInput{KeyId: id, ReplicaRegion: "eu-west-1"}); err != nil {
			t.Fatal(err)
		}
		p.settle(t)
	}
	replicate()
	enc, err := us.Encrypt(ctx, alice, &ks.EncryptInput{KeyId: id, Plaintext: []byte("kept")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eu.ScheduleKeyDeletion(ctx, alice, &ks.ScheduleKeyDeletionInput{KeyId: id}); err != nil {
		t.Fatal(err)
	}
	p.regs["eu-west-1"].clock.advance(31 * 24 * time.Hour)
	if err := eu.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	p.settle(t)
	if k := p.regs["us-east-1"].key(t, id); len(k.Replicas) != 0 {
		t.Fatalf("the primary still lists %v", k.Replicas)
	}
	replicate()
	if err := eu.Sweep(ctx); err != nil { // as at the next start
		t.Fatal(err)
	}
	p.regs["eu-west-1"].restart() // an empty material cache: read from the store
	eu = p.regs["eu-west-1"].svc
	if dec, err := eu.Decrypt(ctx, alice, &ks.DecryptInput{CiphertextBlob: enc.CiphertextBlob}); err != nil || string(dec.Plaintext) != "kept" {
		t.Fatalf("the replica made again: %v", err)
	}
	if k := p.regs["us-east-1"].key(t, id); len(k.Replicas) != 1 || k.Replicas[0].Acked == 0 {
		t.Fatalf("the primary's replicas %+v", k.Replicas)
	}
}
