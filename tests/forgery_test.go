package tests

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/writer"
	"github.com/keyledger/keyledger/projections/compliance"
)

const carolARN = "arn:aws:iam::444455556666:user/carol"

// TestNATSWithoutKeyledgerCredentialsCannotWrite: the embedded server's
// listener takes no anonymous client, and the audit identity it generates
// can read the ledger but publish nothing to it or to the material bucket.
func TestNATSWithoutKeyledgerCredentialsCannotWrite(t *testing.T) {
	in := start(t, withNATSListen())
	in.createKey("a")
	url := in.backend.ClientURL()
	if nc, err := nats.Connect(url); err == nil {
		nc.Close()
		t.Fatal("an anonymous NATS client connected")
	}
	auditSeed := in.backend.AuditSeedFile()
	auth, err := nats.NkeyOptionFromSeed(auditSeed)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, auth)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	before := in.node.Ledger.Head()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	js, _ := jetstream.New(nc)
	if _, err := js.Publish(ctx, "keyledger.events", []byte("{}\n")); err == nil {
		t.Fatal("the audit identity published to the ledger")
	}
	if _, err := js.Publish(ctx, "$KV.keyledger-materials.x", []byte("x")); err == nil {
		t.Fatal("the audit identity published to the KV")
	}
	if err := nc.Publish("keyledger.events", []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	time.Sleep(300 * time.Millisecond) // one follow interval: nothing may arrive
	if in.node.Ledger.Quarantined() != 0 || in.node.Ledger.Head() != before {
		t.Fatal("a subscribe-only client's publish reached the ledger")
	}
	// It can read: audit verify with it checks the running deployment.
	if code, out := cli(t, "audit", "verify", "--nats-url", url, "--nats-creds", auditSeed); code != 0 || !strings.Contains(out, "OK:") {
		t.Fatalf("audit verify with the audit identity: exit %d\n%s", code, out)
	}
}

// TestForgedEventsAreQuarantined: with keyledger's own NATS credentials
// stolen, a correctly linked forged GrantCreated (unsigned, and signed by
// the attacker's own key), a replayed old batch on its own chain and
// garbage on the writer's data chain are all quarantined: the grant never
// takes effect, the service keeps serving (its writer links its next batch
// after the garbage) and restarts, and audit verify reports each.
func TestForgedEventsAreQuarantined(t *testing.T) {
	in := start(t, withNATSListen())
	ctx := context.Background()
	key := in.createKey("victim")
	enc, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &key, Plaintext: []byte("secret")})
	if err != nil {
		t.Fatal(err)
	}
	carol := in.as("carol")
	if _, err := carol.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob}); err == nil {
		t.Fatal("carol decrypts before any grant")
	}

	stolen, err := nats.NkeyOptionFromSeed(filepath.Join(in.dir, "jetstream", embedded.KeyledgerSeedFile))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(in.backend.ClientURL(), stolen)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	stream, err := js.Stream(ctx, "KEYLEDGER")
	if err != nil {
		t.Fatal(err)
	}
	// forge builds a GrantCreated for carol linked to the last valid event,
	// and returns it with the stream's last sequence.
	forge := func() (uint64, []byte) {
		last, err := stream.GetMsg(ctx, in.node.Ledger.Head().Seq)
		if err != nil {
			t.Fatal(err)
		}
		lines, _ := event.SplitBatch(last.Data)
		prev := lines[len(lines)-1]
		link, _, _ := event.DecodeLink(prev)
		ev := &event.Event{Index: link.Index + 1, Prev: event.Of(prev), Time: in.clock.Now(), Operation: "CreateGrant",
			Account: testAccount, Region: testRegion, KeyID: key,
			Body: &event.GrantCreated{GrantID: "forged", GranteePrincipal: carolARN, Operations: []string{"Decrypt"}, TokenHash: "x"}}
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.LastSeq, append(ev.AppendEncoded(nil), '\n')
	}
	publishOn := func(subject string, data []byte, hdr nats.Header, lastSeq uint64) {
		t.Helper()
		m := &nats.Msg{Subject: subject, Data: data, Header: hdr}
		if _, err := js.PublishMsg(ctx, m, jetstream.WithExpectLastSequence(lastSeq)); err != nil {
			t.Fatal(err)
		}
	}
	publish := func(data []byte, hdr nats.Header, lastSeq uint64) {
		t.Helper()
		publishOn("keyledger.events", data, hdr, lastSeq)
	}
	// 1. Unsigned.
	last, data := forge()
	publish(data, nats.Header{}, last)
	// 2. Signed by the attacker's own writer key, claiming the real writer's ID.
	last, data = forge()
	attacker := writer.Generate()
	publish(data, nats.Header{writer.HeaderWriter: {in.writer.ID()},
		writer.HeaderSignature: {base64.StdEncoding.EncodeToString(attacker.Sign(last+1, data))}}, last)
	// 3. A replayed old batch, with its genuine signature, on its chain.
	old, err := stream.GetMsg(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	old.Header.Del(jetstream.MsgIDHeader) // else JetStream drops it as a duplicate
	old.Header.Del(jetstream.ExpectedLastSubjSeqHeader)
	info, _ := stream.Info(ctx)
	publishOn(old.Subject, old.Data, old.Header, info.State.LastSeq)
	// 4. Garbage, on the writer's data chain.
	info, _ = stream.Info(ctx)
	publishOn("keyledger.events.w."+in.writer.ID(), []byte("\x00not an event"), nats.Header{}, info.State.LastSeq)

	deadline := time.Now().Add(10 * time.Second)
	for in.node.Ledger.Quarantined() < 4 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := in.node.Ledger.Quarantined(); n != 4 {
		t.Fatalf("%d messages quarantined, want 4", n)
	}
	if !strings.Contains(in.logs.String(), "ALARM: ledger message quarantined") {
		t.Fatal("no alarm in the log")
	}

	check := func(when string) {
		t.Helper()
		_, err := carol.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
		wantCode(t, err, "AccessDeniedException")
		grants, err := in.kms.ListGrants(ctx, &kms.ListGrantsInput{KeyId: &key})
		if err != nil || len(grants.Grants) != 0 {
			t.Fatalf("%s: grants %v %v", when, grants, err)
		}
		// The service writes on, past the quarantined messages.
		e, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &key, Plaintext: []byte("more")})
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		d, err := in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: e.CiphertextBlob})
		if err != nil || !bytes.Equal(d.Plaintext, []byte("more")) {
			t.Fatalf("%s: decrypt %v", when, err)
		}
	}
	check("after the forgeries")
	carol = nil
	in.restart()
	carol = in.as("carol")
	check("after a restart")
	if n := in.node.Ledger.Quarantined(); n != 4 {
		t.Fatalf("replay quarantined %d messages, want 4", n)
	}

	// The compliance report's audit-integrity check fails, naming them.
	status, body := getAudit(t, in, "admin", "/reports/compliance?format=json")
	var rep compliance.Report
	if err := json.Unmarshal(body, &rep); status != 200 || err != nil {
		t.Fatalf("compliance report: %d %v", status, err)
	}
	var integrity *compliance.Check
	for i := range rep.Checks {
		if rep.Checks[i].ID == "audit-integrity" {
			integrity = &rep.Checks[i]
		}
	}
	if integrity == nil || integrity.Status != "FAIL" || !strings.Contains(integrity.Summary, "4 ledger messages quarantined") ||
		len(integrity.Findings) != 4 || !strings.Contains(integrity.Findings[0].Detail, "stream sequence") {
		t.Fatalf("audit-integrity with 4 quarantined messages: %+v", integrity)
	}

	code, out := cli(t, "audit", "verify", "--nats-url", in.backend.ClientURL(), "--nats-creds", in.backend.AuditSeedFile())
	if code != 3 || !strings.Contains(out, "FAILED: 4 message(s) quarantined") ||
		!strings.Contains(out, "not signed") || !strings.Contains(out, "signature does not verify") || !strings.Contains(out, "broken at stream sequence") {
		t.Fatalf("audit verify: exit %d\n%s", code, out)
	}
	_ = aws.String
}

// The subscribe-only audit nkey the README hands to audit subscribers reads
// the newest checkpoint and exports it; these commands used to ask for a
// stream update it may not make, hang until their deadline and fail (or
// export no checkpoint).
func TestAuditIdentityReadsCheckpointsFromTheCLI(t *testing.T) {
	in := start(t, withNATSListen())
	in.createKey("checkpointed")
	signed, err := in.node.Checkpointer.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	creds := []string{"--nats-url", in.backend.ClientURL(), "--nats-creds", in.backend.AuditSeedFile()}
	code, out := cli(t, append([]string{"audit", "checkpoint"}, creds...)...)
	if code != 0 || out != string(signed) {
		t.Fatalf("audit checkpoint: exit %d\n%s", code, out)
	}
	dir := t.TempDir()
	code, out = cli(t, append([]string{"audit", "export", "--out", dir}, creds...)...)
	got, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if code != 0 || err != nil || string(got) != string(signed) {
		t.Fatalf("audit export: exit %d, checkpoint %v\n%s", code, err, out)
	}
}

// TestGarbageOnTheDataChainIsReportedBounded: a forger holding keyledger's
// NATS credentials puts garbage in the writer's data chain's next place
// before every request. Each request is still served (the writer links
// after the garbage), every piece is quarantined, and the log says so a
// few times, not once per publish: a stream leader cut off from its quorum
// answered every publish this way, about 275 times a second.
func TestGarbageOnTheDataChainIsReportedBounded(t *testing.T) {
	in := start(t, withNATSListen())
	ctx := context.Background()
	key := in.createKey("victim")
	stolen, err := nats.NkeyOptionFromSeed(filepath.Join(in.dir, "jetstream", embedded.KeyledgerSeedFile))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(in.backend.ClientURL(), stolen)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	stream, err := js.Stream(ctx, "KEYLEDGER")
	if err != nil {
		t.Fatal(err)
	}
	before := in.node.Ledger.Quarantined()
	const rounds = 30
	for i := range rounds {
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := &nats.Msg{Subject: "keyledger.events.w." + in.writer.ID(), Data: append([]byte("\x00garbage "), byte(i))}
		if _, err := js.PublishMsg(ctx, m, jetstream.WithExpectLastSequence(info.State.LastSeq)); err != nil {
			t.Fatal(err)
		}
		if _, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &key, Plaintext: []byte("x")}); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	if n := in.node.Ledger.Quarantined() - before; n != rounds {
		t.Fatalf("%d of %d garbage messages quarantined", n, rounds)
	}
	got := strings.Count(in.logs.String(), "took its data chain's next place")
	if got == 0 || got > 3 {
		t.Fatalf("the taken place was reported %d times for %d garbage messages; want a few", got, rounds)
	}
}
