package tests

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/crypto/regionkey"
	"github.com/keyledger/keyledger/gateway/node"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/writer"
)

// Attacks on multi-Region keys (issue 20), from outside: what a caller of
// the AWS API, or a NATS client with keyledger's credentials, can do.

// TestMultiRegionPromotePendingDeletionReplica: AWS requires the replica
// that UpdatePrimaryRegion promotes to be Enabled. Here the primary cannot
// see its replica's state, so it hands the role to a replica scheduled for
// deletion; whatever the answer, no related key may end up a replica of a
// primary that no longer exists (an orphan no one can rotate, promote or
// replicate), and a primary with replicas must never be deleted outright.
func TestMultiRegionPromotePendingDeletionReplica(t *testing.T) {
	r := startRegions(t, []string{usEast, euWest}, withMultiRegion())
	ctx := context.Background()
	us, eu := r.client("admin", usEast), r.client("admin", euWest)
	id := r.clientKey(t, us, true)
	if _, err := us.ReplicateKey(ctx, &kms.ReplicateKeyInput{KeyId: &id, ReplicaRegion: aws.String(euWest)}); err != nil {
		t.Fatal(err)
	}
	waitKeyState(t, eu, id, "Enabled")
	waitUntil(t, 20*time.Second, "the primary sees the replica confirmed", func() bool {
		out, err := us.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		return err == nil && out.KeyMetadata.KeyState == types.KeyStateEnabled
	})
	if _, err := eu.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &id, PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	var updateErr error
	waitUntil(t, 20*time.Second, "UpdatePrimaryRegion answered (replica confirmed)", func() bool {
		_, updateErr = us.UpdatePrimaryRegion(ctx, &kms.UpdatePrimaryRegionInput{KeyId: &id, PrimaryRegion: aws.String(euWest)})
		return updateErr == nil || !isCode(updateErr, "KMSInvalidStateException") || !containsCreating(updateErr)
	})
	t.Logf("UpdatePrimaryRegion to a replica pending deletion: %v", updateErr)
	time.Sleep(500 * time.Millisecond) // the move, if made, reaches eu-west-1
	if out, err := eu.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id}); err == nil {
		t.Logf("eu-west-1 after the move: %s %s", out.KeyMetadata.KeyState, out.KeyMetadata.MultiRegionConfiguration.MultiRegionKeyType)
	}
	r.clock.Advance(8 * 24 * time.Hour)
	time.Sleep(2 * time.Second) // the scheduler and the replicators act
	a, err := us.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
	if err != nil {
		t.Fatalf("us-east-1's key, never scheduled for deletion, is gone: %v", err)
	}
	cfg := a.KeyMetadata.MultiRegionConfiguration
	if cfg.MultiRegionKeyType == types.MultiRegionKeyTypeReplica {
		if _, err := eu.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id}); err != nil {
			t.Fatalf("us-east-1 is a replica of %s, which was deleted (a primary deleted while it had a replica): %v",
				*cfg.PrimaryKey.Arn, err)
		}
		// The replica's deletion then starts the primary's window.
		if _, err := us.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &id, PendingWindowInDays: aws.Int32(7)}); err != nil {
			t.Fatal(err)
		}
		r.clock.Advance(8 * 24 * time.Hour)
		waitKeyState(t, eu, id, "PendingDeletion")
	}
}

func isCode(err error, code string) bool {
	return err != nil && strings.Contains(err.Error(), code)
}

func containsCreating(err error) bool { return strings.Contains(err.Error(), "is creating") }

// replicationEnvelope is the wire form of a replication message
// (keyservice's envelope), as an attacker would write it.
type replicationEnvelope struct {
	V      int             `json:"v"`
	From   string          `json:"from"`
	To     string          `json:"to"`
	Kind   string          `json:"kind"`
	Key    string          `json:"key"`
	Writer string          `json:"writer"`
	Body   json.RawMessage `json:"body"`
	Sig    []byte          `json:"sig"`
}

func forgeEnvelope(w *writer.Key, from, to, kind, key string, body []byte) []byte {
	sum := sha256.Sum256(body)
	in := append([]byte("keyledger replication message v1\n"+from+"\n"+to+"\n"+kind+"\n"+key+"\n"), sum[:]...)
	env := replicationEnvelope{V: 1, From: from, To: to, Kind: kind, Key: key, Body: body}
	if w != nil {
		env.Writer, env.Sig = w.ID(), w.SignRaw(in)
	}
	data, _ := json.Marshal(env)
	return data
}

// TestMultiRegionForgedReplicationRefused: a NATS client with keyledger's
// NATS access (here: an unauthenticated external NATS, as a stolen
// credential gives) publishes into the replication subjects: garbage, an
// unsigned sync, a sync signed by its own writer key and one naming
// keyledger's writer with the attacker's signature (each claiming a newer
// version, another primary and other material), a forged hello swapping
// the region's replication key, replays of every message it recorded
// (an older sync with what to create the replica with, older acks), a
// message on a malformed subject and a near-maximal one. Neither region
// records anything, both keep serving, the replica keeps its material and
// its primary, and replication keeps working afterwards.
func TestMultiRegionForgedReplicationRefused(t *testing.T) {
	natsURL, _ := startDomain(t, "hub", "")
	r := startRegions(t, []string{usEast, euWest}, func(r *regionSet) { r.natsURL = natsURL }, withMultiRegion())
	ctx := context.Background()
	us, eu := r.client("admin", usEast), r.client("admin", euWest)

	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var mu sync.Mutex
	var recorded []*nats.Msg
	if _, err := nc.Subscribe("keyledger.mrk.>", func(m *nats.Msg) {
		mu.Lock()
		recorded = append(recorded, m)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	nc.Flush()

	id := r.clientKey(t, us, true)
	if _, err := us.ReplicateKey(ctx, &kms.ReplicateKeyInput{KeyId: &id, ReplicaRegion: aws.String(euWest)}); err != nil {
		t.Fatal(err)
	}
	waitKeyState(t, eu, id, "Enabled")
	first, _ := eu.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
	if _, err := us.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: &id}); err != nil {
		t.Fatal(err)
	}
	var current string
	waitUntil(t, 20*time.Second, "the rotation current in both regions", func() bool {
		a, err1 := us.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		b, err2 := eu.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		if err1 != nil || err2 != nil {
			return false
		}
		current = *a.KeyMetadata.CurrentKeyMaterialId
		return current != *first.KeyMetadata.CurrentKeyMaterialId && *b.KeyMetadata.CurrentKeyMaterialId == current
	})
	enc, err := us.Encrypt(ctx, &kms.EncryptInput{KeyId: &id, Plaintext: []byte("before the attack")})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // acknowledgements settle
	usBefore, euBefore := len(r.records(usEast)), len(r.records(euWest))

	mu.Lock()
	replays := slices.Clone(recorded)
	mu.Unlock()
	if len(replays) < 3 {
		t.Fatalf("recorded only %d replication messages", len(replays))
	}
	attacker := writer.Generate()
	syncBody := func(primary string, version int, extra string) []byte {
		return []byte(fmt.Sprintf(`{"account":%q,"keyId":%q,"version":%d,"eventId":"forged","primary":%q,"replicas":["eu-west-1"],`+
			`"spec":"SYMMETRIC_DEFAULT","usage":"ENCRYPT_DECRYPT","origin":"AWS_KMS","materials":[{"id":"forged","created":"2026-01-01T00:00:00Z","sealed":"AAAA"}],"current":"forged"%s}`,
			testAccount, id, version, primary, extra))
	}
	subj := func(from, to, kind, key string) string {
		return "keyledger.mrk." + from + "." + to + "." + kind + "." + key
	}
	toEU := subj(usEast, euWest, "sync", id)
	publish := func(subject string, data []byte) {
		t.Helper()
		if err := nc.Publish(subject, data); err != nil {
			t.Fatalf("publish %s: %v", subject, err)
		}
		// The outbox keeps one message per subject: let the inbox's
		// source copy each before the next replaces it.
		nc.Flush()
		time.Sleep(100 * time.Millisecond)
	}
	publish(toEU, []byte("garbage"))
	publish(toEU, forgeEnvelope(nil, usEast, euWest, "sync", id, syncBody(usEast, 1000, "")))
	publish(toEU, forgeEnvelope(attacker, usEast, euWest, "sync", id, syncBody(euWest, 1000, "")))
	// The right writer id, the attacker's signature.
	forged := forgeEnvelope(attacker, usEast, euWest, "sync", id, syncBody(usEast, 1001, ""))
	var env replicationEnvelope
	_ = json.Unmarshal(forged, &env)
	env.Writer = r.writer.ID()
	forged, _ = json.Marshal(env)
	publish(toEU, forged)
	// A hello swapping us-east-1's replication key in eu-west-1.
	other, err := regionkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	publish(subj(usEast, euWest, "hello", "_"), forgeEnvelope(attacker, usEast, euWest, "hello", "_",
		[]byte(fmt.Sprintf(`{"publicKey":%q}`, other.PublicText()))))
	// A forged deletion of the replica, reported to the primary.
	publish(subj(euWest, usEast, "ack", id), forgeEnvelope(attacker, euWest, usEast, "ack", id,
		[]byte(fmt.Sprintf(`{"account":%q,"keyId":%q,"version":3,"deleted":true}`, testAccount, id))))
	// Malformed subjects and a near-maximal message.
	publish(toEU+".extra", forgeEnvelope(attacker, usEast, euWest, "sync", id, syncBody(usEast, 1002, "")))
	publish(subj(usEast, euWest, "sync", "mrk-00000000000000000000000000000000"), []byte(`{"v":1}`))
	big := make([]byte, 900<<10)
	for i := range big {
		big[i] = 'A'
	}
	publish(toEU, forgeEnvelope(attacker, usEast, euWest, "sync", id, syncBody(usEast, 1003, `,"description":"`+string(big)+`"`)))
	// Every recorded message, replayed.
	for _, m := range replays {
		publish(m.Subject, m.Data)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // many replicator rounds

	for region, before := range map[string]int{usEast: usBefore, euWest: euBefore} {
		if recs := r.records(region); len(recs) != before {
			for _, rec := range recs[before:] {
				t.Errorf("%s recorded %s %T after the forgeries", region, rec.Event.Operation, rec.Event.Body)
			}
		}
	}
	for name, c := range map[string]*kms.Client{usEast: us, euWest: eu} {
		out, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		if err != nil {
			t.Fatal(err)
		}
		md := out.KeyMetadata
		if md.KeyState != types.KeyStateEnabled || *md.CurrentKeyMaterialId != current ||
			*md.MultiRegionConfiguration.PrimaryKey.Region != usEast || len(md.MultiRegionConfiguration.ReplicaKeys) != 1 {
			t.Fatalf("%s after the forgeries: %s current %s primary %s replicas %d", name, md.KeyState, *md.CurrentKeyMaterialId,
				*md.MultiRegionConfiguration.PrimaryKey.Region, len(md.MultiRegionConfiguration.ReplicaKeys))
		}
		decryptTo(t, c, enc.CiphertextBlob, "before the attack", name+" decrypts after the forgeries")
	}
	// Replication still works: a rotation reaches the replica.
	if _, err := us.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: &id}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "a rotation after the attack current in both regions", func() bool {
		a, err1 := us.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		b, err2 := eu.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		return err1 == nil && err2 == nil && *a.KeyMetadata.CurrentKeyMaterialId != current &&
			*b.KeyMetadata.CurrentKeyMaterialId == *a.KeyMetadata.CurrentKeyMaterialId
	})
	// Each forgery reached a replicator and was refused there (not lost
	// on the way, which would prove nothing).
	if n := strings.Count(r.logs.String(), "replication message refused"); n < 8 {
		t.Fatalf("%d refusals logged, want one per forgery (8)", n)
	}
}

// TestMultiRegionMoveToReplicaDeletedWhileCutOff: two deployments. With
// the link cut, us-east-1 hands the primary role to eu-west-1, and
// eu-west-1 (which cannot know) deletes its replica after its window. When
// the link heals the move can never complete: the surviving related key
// must not stay a replica, Updating, of a deleted primary (no related key
// could ever rotate, replicate or be managed again); it takes its role
// back.
func TestMultiRegionMoveToReplicaDeletedWhileCutOff(t *testing.T) {
	t.Parallel()
	hubURL, leafPort := startDomain(t, usEast, "")
	proxy := newLinkProxy(t, fmt.Sprintf("127.0.0.1:%d", leafPort))
	leafURL, _ := startDomain(t, euWest, proxy.addr())
	wa, wb := writer.Generate(), writer.Generate()
	a := deployment(t, hubURL, usEast, wa, euWest, wb.Public())
	b := deployment(t, leafURL, euWest, wb, usEast, wa.Public())
	ctx := context.Background()
	us, eu := a.client("admin", usEast), b.client("admin", euWest)
	id := a.clientKey(t, us, true)
	if _, err := us.ReplicateKey(ctx, &kms.ReplicateKeyInput{KeyId: &id, ReplicaRegion: aws.String(euWest)}); err != nil {
		t.Fatal(err)
	}
	waitKeyState(t, eu, id, "Enabled")
	waitUntil(t, 30*time.Second, "the primary has the replica's confirmation", func() bool {
		return slices.ContainsFunc(recordsOf(a, usEast, id), func(rec event.Record) bool {
			_, ok := rec.Event.Body.(*event.ReplicaAcknowledged)
			return ok
		})
	})

	proxy.setCut(true)
	if _, err := us.UpdatePrimaryRegion(ctx, &kms.UpdatePrimaryRegionInput{KeyId: &id, PrimaryRegion: aws.String(euWest)}); err != nil {
		t.Fatal(err)
	}
	if _, err := eu.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &id, PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	b.clock.Advance(8 * 24 * time.Hour)
	waitUntil(t, 20*time.Second, "the replica deleted in eu-west-1", func() bool {
		_, err := eu.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		return err != nil
	})
	proxy.setCut(false)

	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := us.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		if err != nil {
			t.Fatal(err)
		}
		cfg := out.KeyMetadata.MultiRegionConfiguration
		_, enableErr := us.EnableKey(ctx, &kms.EnableKeyInput{KeyId: &id})
		if cfg.MultiRegionKeyType == types.MultiRegionKeyTypePrimary && enableErr == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after the link healed us-east-1's key is a %s of %s (deleted), and EnableKey says %v",
				cfg.MultiRegionKeyType, *cfg.PrimaryKey.Arn, enableErr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestMultiRegionCrossAccountReplicateKeepsOwnersPolicy: account A's key
// policy lets erin, account B's administrator, call kms:ReplicateKey on
// its primary (and nothing else). AWS documents ReplicateKey as not
// cross-account; whether keyledger refuses her or makes the replica, the
// replica is account A's key: its default policy must be A's, not the
// caller's — else erin's account owns A's key in eu-west-1 (decrypts A's
// ciphertext, rewrites its policy) and A's own administrator is locked
// out of it.
func TestMultiRegionCrossAccountReplicateKeepsOwnersPolicy(t *testing.T) {
	r := startRegions(t, []string{usEast, euWest}, withMultiRegion())
	ctx := context.Background()
	us, eu := r.client("admin", usEast), r.client("admin", euWest)
	id := r.clientKey(t, us, true)
	policy := `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},
 {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:user/erin"},"Action":"kms:ReplicateKey","Resource":"*"}]}`
	if _, err := us.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: &id, Policy: &policy}); err != nil {
		t.Fatal(err)
	}
	secret, err := us.Encrypt(ctx, &kms.EncryptInput{KeyId: &id, Plaintext: []byte("account A's secret")})
	if err != nil {
		t.Fatal(err)
	}
	arn := "arn:aws:kms:us-east-1:" + testAccount + ":key/" + id
	_, err = r.client("erin", usEast).ReplicateKey(ctx, &kms.ReplicateKeyInput{KeyId: &arn, ReplicaRegion: aws.String(euWest)})
	if err != nil {
		t.Logf("cross-account ReplicateKey refused: %v", err)
		return
	}
	waitUntil(t, 20*time.Second, "the replica made in eu-west-1", func() bool {
		return slices.ContainsFunc(recordsOf(r, euWest, id), func(rec event.Record) bool {
			_, ok := rec.Event.Body.(*event.ReplicaKeyCreated)
			return ok
		})
	})
	got, err := eu.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: &id})
	if err != nil {
		t.Errorf("account A's administrator cannot read its own replica's policy: %v", err)
	} else if strings.Contains(*got.Policy, "444455556666") {
		t.Errorf("the replica's default policy names the caller's account:\n%s", *got.Policy)
	}
	euARN := "arn:aws:kms:eu-west-1:" + testAccount + ":key/" + id
	if out, err := r.client("erin", euWest).Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: secret.CiphertextBlob, KeyId: &euARN}); err == nil {
		t.Fatalf("account B decrypts account A's ciphertext with A's replica: %q", out.Plaintext)
	}
}

// TestMultiRegionManyKeysLeaveNothingBehind: many multi-Region keys
// replicated at once. When every replica is made and confirmed, the inboxes
// are empty (applied messages erased), no sync (which carries sealed
// material) stays in the primary's outbox, and the replica's outbox holds
// at most its latest acknowledgement per key. A restart records nothing
// new and is timed.
func TestMultiRegionManyKeysLeaveNothingBehind(t *testing.T) {
	const n = 500 // 2,000 measured: see the commit
	natsURL, _ := startDomain(t, "hub", "")
	r := startRegions(t, []string{usEast, euWest}, func(r *regionSet) { r.natsURL = natsURL }, withMultiRegion(),
		func(r *regionSet) {
			prev := r.configure
			r.configure = func(cfg *node.Config) {
				prev(cfg)
				cfg.MultiRegion.ResendAfter = 30 * time.Second // the default
			}
		})
	ctx := context.Background()
	us, eu := r.client("admin", usEast), r.client("admin", euWest)
	began := time.Now()
	ids := make(chan string, 8*(n/8+1))
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/8+1; i++ {
				out, err := us.CreateKey(ctx, &kms.CreateKeyInput{MultiRegion: aws.Bool(true)})
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := us.ReplicateKey(ctx, &kms.ReplicateKeyInput{KeyId: out.KeyMetadata.KeyId, ReplicaRegion: aws.String(euWest)}); err != nil {
					t.Error(err)
					return
				}
				ids <- *out.KeyMetadata.KeyId
			}
		}()
	}
	wg.Wait()
	close(ids)
	if t.Failed() {
		t.FailNow()
	}
	total := len(ids)
	t.Logf("%d keys created and ReplicateKey answered in %v", total, time.Since(began).Round(time.Millisecond))
	countKeys := func(c *kms.Client) int {
		count, marker := 0, (*string)(nil)
		for {
			out, err := c.ListKeys(ctx, &kms.ListKeysInput{Limit: aws.Int32(1000), Marker: marker})
			if err != nil {
				return -1
			}
			count += len(out.Keys)
			if !out.Truncated {
				return count
			}
			marker = out.NextMarker
		}
	}
	waitUntil(t, 120*time.Second, "every replica made", func() bool { return countKeys(eu) == total })
	t.Logf("every replica made %v after the first CreateKey", time.Since(began).Round(time.Millisecond))
	acked := func() int {
		c := 0
		for _, rec := range r.records(usEast) {
			if _, ok := rec.Event.Body.(*event.ReplicaAcknowledged); ok {
				c++
			}
		}
		return c
	}
	waitUntil(t, 120*time.Second, "every replica confirmed", func() bool { return acked() >= total })

	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	subjects := func(stream, filter string) (msgs uint64, bytes uint64, perSubject map[string]uint64) {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			t.Fatalf("stream %s: %v", stream, err)
		}
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs, info.State.Bytes, info.State.Subjects
	}
	var state string
	defer func() {
		if t.Failed() {
			t.Log(state)
		}
	}()
	waitUntil(t, 60*time.Second, "inboxes empty and no sync left in the outbox", func() bool {
		inUS, _, _ := subjects("KEYLEDGER_MRK_IN", ">")
		inEU, _, _ := subjects("KEYLEDGER_EU_WEST_1_MRK_IN", ">")
		_, _, syncs := subjects("KEYLEDGER_MRK_OUT", "keyledger.mrk.us-east-1.eu-west-1.sync.>")
		state = fmt.Sprintf("us inbox %d, eu inbox %d, syncs in us's outbox %d", inUS, inEU, len(syncs))
		return inUS == 0 && inEU == 0 && len(syncs) == 0
	})
	outUS, bytesUS, _ := subjects("KEYLEDGER_MRK_OUT", ">")
	outEU, bytesEU, acks := subjects("KEYLEDGER_EU_WEST_1_MRK_OUT", ">")
	t.Logf("%s; us outbox %d msgs %d B; eu outbox %d msgs %d B (%d subjects)", state, outUS, bytesUS, outEU, bytesEU, len(acks))
	if outEU > uint64(total)+1 {
		t.Fatalf("eu's outbox holds %d messages for %d keys", outEU, total)
	}

	usBefore, euBefore := len(r.records(usEast)), len(r.records(euWest))
	restarted := time.Now()
	r.restart()
	us, eu = r.client("admin", usEast), r.client("admin", euWest)
	waitUntil(t, 60*time.Second, "both regions answer after the restart", func() bool {
		return countKeys(us) == total && countKeys(eu) == total
	})
	t.Logf("restart with %d multi-Region keys: serving after %v", total, time.Since(restarted).Round(time.Millisecond))
	time.Sleep(2 * time.Second) // replicator rounds after the start
	for region, before := range map[string]int{usEast: usBefore, euWest: euBefore} {
		for _, rec := range r.records(region)[before:] {
			if _, call := rec.Event.Body.(*event.APICall); call {
				continue // this test's own ListKeys
			}
			t.Errorf("%s recorded %s %T (key %q) after the restart", region, rec.Event.Operation, rec.Event.Body, rec.Event.KeyID)
		}
	}
}

// TestMultiRegionCrossRegionIsolation: a request signed for one region
// names the other region's key ARN, alias ARN or grant; a single-Region
// key's ciphertext goes to the other region; an mrk ciphertext is named
// with an unrelated mrk key. Everything is refused with AWS's codes.
func TestMultiRegionCrossRegionIsolation(t *testing.T) {
	r := startRegions(t, []string{usEast, euWest}, withMultiRegion())
	ctx := context.Background()
	us, eu := r.client("admin", usEast), r.client("admin", euWest)
	single := r.clientKey(t, us, false)
	mrk := r.clientKey(t, us, true)
	unrelated := r.clientKey(t, us, true)
	for _, id := range []string{mrk, unrelated} {
		if _, err := us.ReplicateKey(ctx, &kms.ReplicateKeyInput{KeyId: &id, ReplicaRegion: aws.String(euWest)}); err != nil {
			t.Fatal(err)
		}
		waitKeyState(t, eu, id, "Enabled")
	}
	if _, err := us.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/only-us"), TargetKeyId: &mrk}); err != nil {
		t.Fatal(err)
	}
	usARN := func(s string) *string { return aws.String("arn:aws:kms:us-east-1:" + testAccount + ":" + s) }
	_, err := eu.Encrypt(ctx, &kms.EncryptInput{KeyId: usARN("key/" + mrk), Plaintext: []byte("x")})
	wantCode(t, err, "NotFoundException")
	_, err = eu.Encrypt(ctx, &kms.EncryptInput{KeyId: usARN("alias/only-us"), Plaintext: []byte("x")})
	wantCode(t, err, "NotFoundException")
	_, err = eu.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: usARN("key/" + single)})
	wantCode(t, err, "NotFoundException")

	// A grant made in us-east-1 gives alice nothing in eu-west-1, even
	// with its token.
	g, err := us.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: &mrk, GranteePrincipal: aws.String("arn:aws:iam::" + testAccount + ":user/alice"),
		Operations: []types.GrantOperation{types.GrantOperationEncrypt, types.GrantOperationDecrypt}})
	if err != nil {
		t.Fatal(err)
	}
	alice := func(region string) error {
		_, err := r.client("alice", region).Encrypt(ctx, &kms.EncryptInput{KeyId: &mrk, Plaintext: []byte("x"), GrantTokens: []string{*g.GrantToken}})
		return err
	}
	if err := alice(usEast); err != nil {
		t.Fatalf("alice with her grant in us-east-1: %v", err)
	}
	if err := alice(euWest); !isCode(err, "AccessDeniedException") && !isCode(err, "InvalidGrantTokenException") {
		t.Fatalf("alice with us-east-1's grant token in eu-west-1: %v", err)
	}
	_, err = eu.RetireGrant(ctx, &kms.RetireGrantInput{GrantToken: g.GrantToken})
	if err == nil {
		t.Fatal("us-east-1's grant token retired a grant in eu-west-1")
	}
	if grants, err := eu.ListGrants(ctx, &kms.ListGrantsInput{KeyId: &mrk}); err != nil || len(grants.Grants) != 0 {
		t.Fatalf("eu-west-1 lists grants %v (%v)", grants, err)
	}

	// Ciphertext: a single-Region key's is not eu's to open; an mrk's is,
	// but not under an unrelated mrk key named in the request.
	enc, err := us.Encrypt(ctx, &kms.EncryptInput{KeyId: &single, Plaintext: []byte("single")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = eu.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	wantCode(t, err, "InvalidCiphertextException")
	menc, err := us.Encrypt(ctx, &kms.EncryptInput{KeyId: &mrk, Plaintext: []byte("mrk")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = eu.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: menc.CiphertextBlob, KeyId: &unrelated})
	wantCode(t, err, "IncorrectKeyException")
	_, err = eu.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: menc.CiphertextBlob, DestinationKeyId: usARN("key/" + unrelated)})
	wantCode(t, err, "NotFoundException")
	decryptTo(t, eu, menc.CiphertextBlob, "mrk", "eu decrypts the related key's ciphertext")
}

// TestMultiRegionReplicateAgainAfterDeletion: a replica deleted after its
// window, then made again in the same region, holds every material
// again (older ciphertext decrypts there) and follows rotations; a
// primary whose deletion was cancelled while PendingReplicaDeletion stays
// Disabled when its last replica goes.
func TestMultiRegionReplicateAgainAfterDeletion(t *testing.T) {
	r := startRegions(t, []string{usEast, euWest}, withMultiRegion())
	ctx := context.Background()
	us, eu := r.client("admin", usEast), r.client("admin", euWest)
	id := r.clientKey(t, us, true)
	old, err := us.Encrypt(ctx, &kms.EncryptInput{KeyId: &id, Plaintext: []byte("old")})
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 2; round++ {
		if _, err := us.ReplicateKey(ctx, &kms.ReplicateKeyInput{KeyId: &id, ReplicaRegion: aws.String(euWest)}); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		waitKeyState(t, eu, id, "Enabled")
		decryptTo(t, eu, old.CiphertextBlob, "old", fmt.Sprintf("round %d: eu decrypts the oldest ciphertext", round))
		prev, err := us.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := us.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: &id}); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 20*time.Second, "the rotation current in both", func() bool {
			a, err1 := us.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
			b, err2 := eu.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
			return err1 == nil && err2 == nil && *a.KeyMetadata.CurrentKeyMaterialId == *b.KeyMetadata.CurrentKeyMaterialId &&
				*a.KeyMetadata.CurrentKeyMaterialId != *prev.KeyMetadata.CurrentKeyMaterialId
		})
		if round == 1 { // the primary's deletion, cancelled, waits for nothing
			if _, err := us.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &id, PendingWindowInDays: aws.Int32(7)}); err != nil {
				t.Fatal(err)
			}
			if _, err := us.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: &id}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := eu.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &id, PendingWindowInDays: aws.Int32(7)}); err != nil {
			t.Fatal(err)
		}
		r.clock.Advance(8 * 24 * time.Hour)
		waitUntil(t, 20*time.Second, fmt.Sprintf("round %d: the primary lists no replica", round), func() bool {
			out, err := us.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
			return err == nil && len(out.KeyMetadata.MultiRegionConfiguration.ReplicaKeys) == 0
		})
	}
	out, err := us.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
	if err != nil || out.KeyMetadata.KeyState != types.KeyStateDisabled {
		t.Fatalf("the primary after a cancelled deletion and its last replica gone: %v %v", out.KeyMetadata.KeyState, err)
	}
}

// TestMultiRegionChangesDuringCutArriveInOrder: two deployments; with the
// link cut the primary rotates twice, enables rotation with one period,
// then changes it; ciphertext is made under each material the primary
// uses. When the link heals the replica holds every material, the last
// period, and the primary's current material; everything decrypts in both.
func TestMultiRegionChangesDuringCutArriveInOrder(t *testing.T) {
	t.Parallel()
	hubURL, leafPort := startDomain(t, usEast, "")
	proxy := newLinkProxy(t, fmt.Sprintf("127.0.0.1:%d", leafPort))
	leafURL, _ := startDomain(t, euWest, proxy.addr())
	wa, wb := writer.Generate(), writer.Generate()
	a := deployment(t, hubURL, usEast, wa, euWest, wb.Public())
	b := deployment(t, leafURL, euWest, wb, usEast, wa.Public())
	ctx := context.Background()
	us, eu := a.client("admin", usEast), b.client("admin", euWest)
	id := a.clientKey(t, us, true)
	if _, err := us.ReplicateKey(ctx, &kms.ReplicateKeyInput{KeyId: &id, ReplicaRegion: aws.String(euWest)}); err != nil {
		t.Fatal(err)
	}
	waitKeyState(t, eu, id, "Enabled")
	proxy.setCut(true)
	var blobs [][]byte
	for i, step := range []func() error{
		func() error { _, err := us.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: &id}); return err },
		func() error {
			_, err := us.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: &id, RotationPeriodInDays: aws.Int32(400)})
			return err
		},
		func() error { _, err := us.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: &id}); return err },
		func() error {
			_, err := us.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: &id, RotationPeriodInDays: aws.Int32(120)})
			return err
		},
	} {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		enc, err := us.Encrypt(ctx, &kms.EncryptInput{KeyId: &id, Plaintext: []byte(fmt.Sprint("step ", i))})
		if err != nil {
			t.Fatal(err)
		}
		blobs = append(blobs, enc.CiphertextBlob)
		time.Sleep(100 * time.Millisecond)
	}
	proxy.setCut(false)
	waitUntil(t, 60*time.Second, "the replica caught up", func() bool {
		x, err1 := us.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		y, err2 := eu.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		rots, err3 := us.ListKeyRotations(ctx, &kms.ListKeyRotationsInput{KeyId: &id})
		st, err4 := eu.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: &id})
		return err1 == nil && err2 == nil && err3 == nil && err4 == nil && len(rots.Rotations) == 2 &&
			*x.KeyMetadata.CurrentKeyMaterialId == *rots.Rotations[1].KeyMaterialId &&
			*y.KeyMetadata.CurrentKeyMaterialId == *x.KeyMetadata.CurrentKeyMaterialId &&
			st.KeyRotationEnabled && aws.ToInt32(st.RotationPeriodInDays) == 120
	})
	erots, err := eu.ListKeyRotations(ctx, &kms.ListKeyRotationsInput{KeyId: &id})
	if err != nil || len(erots.Rotations) != 2 {
		t.Fatalf("the replica's rotations: %+v %v", erots, err)
	}
	for i, blob := range blobs {
		for name, c := range map[string]*kms.Client{usEast: us, euWest: eu} {
			decryptTo(t, c, blob, fmt.Sprint("step ", i), name)
		}
	}
}
