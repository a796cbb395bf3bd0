package tests

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/projections/keystate"
)

// TestRestartKeepsEverything restarts an instance on its data directory:
// keys, aliases, tags and schedules survive, old ciphertext decrypts, the
// replayed state equals the live one, and the chain verifies.
func TestRestartKeepsEverything(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	k1, k2 := in.createKey("first"), in.createKey("second")
	in.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/keep"), TargetKeyId: &k1})
	in.kms.TagResource(ctx, &kms.TagResourceInput{KeyId: &k1, Tags: []types.Tag{{TagKey: aws.String("env"), TagValue: aws.String("prod")}}})
	in.kms.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &k2, PendingWindowInDays: aws.Int32(10)})
	enc, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("alias/keep"), Plaintext: []byte("survives"),
		EncryptionContext: map[string]string{"a": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	live := in.node.State.Snapshot()
	liveHead := in.node.Ledger.Head()

	in.restart()

	if diff := cmp.Diff(live, in.node.State.Snapshot()); diff != "" {
		t.Fatalf("replayed state differs from the live state (-live +replayed):\n%s", diff)
	}
	if in.node.Ledger.Head() != liveHead {
		t.Fatalf("head %+v after restart, want %+v", in.node.Ledger.Head(), liveHead)
	}
	dec, err := in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: map[string]string{"a": "b"}})
	if err != nil || string(dec.Plaintext) != "survives" {
		t.Fatalf("old ciphertext after restart: %v", err)
	}
	d, err := in.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/keep")})
	if err != nil || *d.KeyMetadata.KeyId != k1 {
		t.Fatalf("alias after restart: %v", err)
	}
	tags, _ := in.kms.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: &k1})
	if len(tags.Tags) != 1 || *tags.Tags[0].TagValue != "prod" {
		t.Fatalf("tags after restart: %+v", tags.Tags)
	}
	d2, _ := in.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &k2})
	if d2.KeyMetadata.KeyState != types.KeyStatePendingDeletion || *d2.KeyMetadata.PendingDeletionWindowInDays != 10 {
		t.Fatalf("schedule after restart: %+v", d2.KeyMetadata)
	}
	// New writes continue the same chain.
	if _, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k1, Plaintext: []byte("more")}); err != nil {
		t.Fatal(err)
	}
	head, err := chain.Verify(ctx, in.node.Ledger)
	if err != nil || head.Count <= liveHead.Count {
		t.Fatalf("chain after restart: %+v %v", head, err)
	}
}

// TestReplayEqualsLive folds the stream into a fresh state and compares it
// with the state the writing instance built as it went.
func TestReplayEqualsLive(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	for i := 0; i < 4; i++ {
		k := in.createKey(fmt.Sprint("k", i))
		in.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(fmt.Sprint("alias/k", i)), TargetKeyId: &k})
		if i%2 == 0 {
			in.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: &k})
		}
		if i == 3 {
			in.kms.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &k, PendingWindowInDays: aws.Int32(7)})
		}
	}
	in.clock.Advance(8 * 24 * time.Hour)
	if err := in.node.Service.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	replayed := keystate.New()
	for _, r := range in.records() {
		replayed.Apply([]event.Record{r})
	}
	if diff := cmp.Diff(in.node.State.Snapshot(), replayed.Snapshot()); diff != "" {
		t.Fatalf("replay differs from live (-live +replay):\n%s", diff)
	}
	if len(replayed.Snapshot().Deleted) != 1 {
		t.Fatal("the deletion was not replayed")
	}
}

// TestAuditFirst takes the ledger away: requests fail with
// KMSInternalException and nothing happens; when it returns, service
// resumes on an unbroken chain.
func TestAuditFirst(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	ns := startNATS(t, dir, port)
	in := start(t, withNATS("nats://127.0.0.1:"+strconv.Itoa(port)), withPublishTimeout(time.Second))
	ctx := context.Background()
	k := in.createKey("before outage")
	if _, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("ok")}); err != nil {
		t.Fatal(err)
	}
	before := in.node.Ledger.Head()

	ns.Shutdown()
	ns.WaitForShutdown()
	_, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("lost?")})
	wantCode(t, err, "KMSInternalException")
	_, err = in.kms.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("during outage")})
	wantCode(t, err, "KMSInternalException")
	_, err = in.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: &k})
	wantCode(t, err, "KMSInternalException")
	if in.node.Ledger.Head() != before {
		t.Fatal("the head moved while the ledger was down")
	}

	startNATS(t, dir, port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err = in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("after")})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("service did not resume: %v", err)
	}
	keys, _ := in.kms.ListKeys(ctx, &kms.ListKeysInput{})
	if len(keys.Keys) != 1 {
		t.Fatalf("%d keys; the failed CreateKey must not have made one", len(keys.Keys))
	}
	d, _ := in.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &k})
	if d.KeyMetadata.KeyState != types.KeyStateEnabled {
		t.Fatal("the failed DisableKey changed the key")
	}
	for _, r := range in.records() {
		if r.Event.Operation == "CreateKey" && r.Event.Body != nil && r.Event.KeyID != k {
			t.Fatalf("an event of a failed request reached the ledger: %+v", r.Event)
		}
	}
	if _, err := chain.Verify(ctx, in.node.Ledger); err != nil {
		t.Fatal(err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startNATS runs a real nats-server with JetStream on a fixed port.
func startNATS(t *testing.T, dir string, port int) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// TestTwoInstancesShareALedger: two instances on one NATS deployment; each
// catches up with what the other wrote, writes are never forked, and the
// chain verifies.
func TestTwoInstancesShareALedger(t *testing.T) {
	port := freePort(t)
	startNATS(t, t.TempDir(), port)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	a := start(t, withNATS(url))
	b := start(t, withNATS(url))
	b.root = a.root // one deployment, one root key
	b.restart()
	ctx := context.Background()
	k := a.createKey("shared by instances")
	enc, err := a.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("from a")})
	if err != nil {
		t.Fatal(err)
	}
	// b catches up on its own (it has written nothing since).
	var dec *kms.DecryptOutput
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if dec, err = b.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob}); err == nil {
			break
		}
	}
	if err != nil || string(dec.Plaintext) != "from a" {
		t.Fatalf("instance b did not catch up: %v", err)
	}
	// Both write; neither forks the chain.
	for i := 0; i < 20; i++ {
		in := a
		if i%2 == 1 {
			in = b
		}
		for attempt := 0; ; attempt++ {
			_, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x")})
			if err == nil {
				break
			}
			if attempt == 3 {
				t.Fatalf("write %d: %v", i, err)
			}
		}
	}
	if _, err := chain.Verify(ctx, a.node.Ledger); err != nil {
		t.Fatalf("the chain forked: %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); a.node.Ledger.Head() != b.node.Ledger.Head() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if a.node.Ledger.Head() != b.node.Ledger.Head() {
		t.Fatalf("instances disagree: %+v vs %+v", a.node.Ledger.Head(), b.node.Ledger.Head())
	}
}
