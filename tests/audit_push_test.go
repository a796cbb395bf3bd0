package tests

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/projections/timetravel"
)

// TestAuditIdentityCannotPushIntoTheLedger: the read-only audit nkey the
// README hands to auditors must not be able to have the server write
// snapshot chunks (or anything) into the ledger or over the wrapped key
// material. Two ways to name a subject the server then publishes to, past
// the identity's publish permissions: a push consumer's deliver subject
// (the audit identity is refused the consumer API), and the reply subject
// of any request it may make (it lives in its own NATS account, where
// replies land).
func TestAuditIdentityCannotPushIntoTheLedger(t *testing.T) {
	in := start(t, withNATSListen())
	key := in.createKey("a")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ct, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &key, Plaintext: []byte("secret")})
	if err != nil {
		t.Fatal(err)
	}
	if err := in.node.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	// The material bucket's keys, listed with keyledger's own identity
	// (only to name the targets; the attack below uses the audit nkey).
	own, err := nats.NkeyOptionFromSeed(filepath.Join(in.dir, "jetstream", embedded.KeyledgerSeedFile))
	if err != nil {
		t.Fatal(err)
	}
	onc, err := nats.Connect(in.backend.ClientURL(), own)
	if err != nil {
		t.Fatal(err)
	}
	defer onc.Close()
	ojs, _ := jetstream.New(onc)
	mkv, err := ojs.KeyValue(ctx, "keyledger-material")
	if err != nil {
		t.Fatal(err)
	}
	mkeys, err := mkv.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}

	auth, err := nats.NkeyOptionFromSeed(in.backend.AuditSeedFile())
	if err != nil {
		t.Fatal(err)
	}
	refused := make(chan error, 16)
	nc, err := nats.Connect(in.backend.ClientURL(), auth, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case refused <- err:
		default:
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	targets := []string{"keyledger.events"}
	for _, k := range mkeys {
		targets = append(targets, "$KV.keyledger-material."+k, "$KV.keyledger-material-copy."+k) // both copies
	}
	for _, deliver := range targets {
		// A push consumer: jetstream's API makes only pull ones, so ask
		// the JS API directly, as any NATS client can.
		req := `{"stream_name":"OBJ_KEYLEDGER_SNAPSHOTS","config":{"deliver_subject":"` + deliver +
			`","deliver_policy":"all","ack_policy":"none"}}`
		if msg, err := nc.Request("$JS.API.CONSUMER.CREATE.OBJ_KEYLEDGER_SNAPSHOTS", []byte(req), 2*time.Second); err == nil {
			t.Errorf("the audit identity created a push consumer delivering to %s: %.120s", deliver, msg.Data)
		}
		select {
		case err := <-refused:
			if !strings.Contains(err.Error(), "Permissions Violation for Publish to \"$JS.API.CONSUMER.CREATE.") {
				t.Errorf("consumer create refused with %v, want a publish permissions violation", err)
			}
		case <-time.After(2 * time.Second):
			t.Errorf("consumer create delivering to %s: no permissions violation", deliver)
		}
		// Requests it may make, answered at a reply subject it names: the
		// stream's info, a snapshot message, a batch of them.
		for subj, body := range map[string]string{
			"$JS.API.STREAM.INFO.OBJ_KEYLEDGER_SNAPSHOTS": "",
			"$JS.API.DIRECT.GET.OBJ_KEYLEDGER_SNAPSHOTS":  `{"seq":1}`,
			"$JS.API.DIRECT.GET.KEYLEDGER":                `{"seq":1,"batch":10}`,
			"$JS.API.STREAM.MSG.GET.KEYLEDGER":            `{"seq":1}`,
		} {
			if err := nc.PublishRequest(subj, deliver, []byte(body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// What it may read, it still reads: its own replies arrive.
	if m, err := nc.Request("$JS.API.STREAM.INFO.OBJ_KEYLEDGER_SNAPSHOTS", nil, 2*time.Second); err != nil || !strings.Contains(string(m.Data), `"config"`) {
		t.Errorf("stream info as the audit identity: %v %+v", err, m)
	}
	// The server answers a connection's requests in the order it reads
	// them: once the same requests asked for our own inbox are answered,
	// the injected ones before them were handled too.
	for subj, body := range map[string]string{
		"$JS.API.DIRECT.GET.OBJ_KEYLEDGER_SNAPSHOTS": `{"seq":1}`,
		"$JS.API.STREAM.MSG.GET.KEYLEDGER":           `{"seq":1}`,
	} {
		if _, err := nc.Request(subj, []byte(body), 5*time.Second); err != nil {
			t.Errorf("%s as the audit identity: %v", subj, err)
		}
	}
	if _, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &key, Plaintext: []byte("after")}); err != nil {
		t.Errorf("Encrypt after the injection: %v", err)
	}
	if q := in.node.Ledger.Quarantined(); q != 0 {
		t.Errorf("the audit identity had the server publish snapshot chunks into the ledger: %d quarantined message(s)", q)
	}
	for _, k := range mkeys {
		if e, err := mkv.Get(ctx, k); err == nil && e.Revision() > 1 {
			t.Errorf("the audit identity had the server overwrite wrapped key material %s (revision %d, %d bytes)", k, e.Revision(), len(e.Value()))
		}
	}
	in.restart()
	if _, err := in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: ct.CiphertextBlob}); err != nil {
		t.Errorf("the audit identity had the server overwrite wrapped key material: Decrypt: %v", err)
	}
}

// TestAuditIdentityReadsWithoutConsumers: what the audit identity runs —
// keys describe --as-of (from a snapshot and its tail), audit tail (a
// history longer than a direct-get batch, then live) and audit verify —
// works with no consumer API, through batched direct gets and the feed.
func TestAuditIdentityReadsWithoutConsumers(t *testing.T) {
	in := start(t, withNATSListen())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	key := in.createKey("reader")
	encrypt := func() {
		t.Helper()
		if _, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &key, Plaintext: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	for range 150 {
		encrypt()
	}
	if err := in.node.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := in.node.Checkpointer.Checkpoint(ctx); err != nil { // names the writer, so the CLI trusts the snapshot
		t.Fatal(err)
	}
	for range 150 { // one message each: more than one short read's worth
		encrypt()
	}
	creds := []string{"--nats-url", in.backend.ClientURL(), "--nats-creds", in.backend.AuditSeedFile()}
	pub := filepath.Join(t.TempDir(), "checkpoint.pub")
	if err := os.WriteFile(pub, []byte(in.vkey), 0o600); err != nil {
		t.Fatal(err)
	}

	code, out := cli(t, append([]string{"keys", "describe", key, "--as-of", time.Now().Add(time.Minute).Format(time.RFC3339), "--pubkey", pub}, creds...)...)
	var ans timetravel.Answer
	if code != 0 || json.Unmarshal([]byte(out), &ans) != nil || !ans.Exists || ans.SnapshotIndex == nil {
		t.Fatalf("keys describe --as-of as the audit identity: exit %d\n%s", code, out)
	}

	code, out = cli(t, append([]string{"audit", "verify"}, creds...)...)
	if code != 0 || !strings.Contains(out, "OK:") {
		t.Fatalf("audit verify as the audit identity: exit %d\n%s", code, out)
	}

	// The live feed reaches the audit identity's account.
	auth, err := nats.NkeyOptionFromSeed(in.backend.AuditSeedFile())
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(in.backend.ClientURL(), auth)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	feed, err := nc.SubscribeSync("keyledger.audit.*." + key + ".Encrypt")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	encrypt()
	if m, err := feed.NextMsg(5 * time.Second); err != nil || !strings.Contains(string(m.Data), `"op":"Encrypt"`) {
		t.Fatalf("live feed as the audit identity: %v", err)
	}

	// audit tail: the 301 Encrypts from history, then one live.
	type result struct {
		code int
		out  string
	}
	done := make(chan result, 1)
	go func() {
		code, out := cli(t, append([]string{"audit", "tail", "--key", key, "--event", "Encrypt", "--from", "0", "--count", "302"}, creds...)...)
		done <- result{code, out}
	}()
	var res result
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case res = <-done:
			break wait
		case <-tick.C:
			encrypt()
		case <-ctx.Done():
			t.Fatal("audit tail as the audit identity did not end")
		}
	}
	lines := strings.Split(strings.TrimSpace(res.out), "\n")
	if res.code != 0 || len(lines) != 302 || !strings.Contains(lines[301], `"op":"Encrypt"`) {
		t.Fatalf("audit tail as the audit identity: exit %d, %d lines\n%.2000s", res.code, len(lines), res.out)
	}
}
