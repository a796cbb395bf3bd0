package tests

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/gateway/node"
	"github.com/keyledger/keyledger/gateway/sigv4"
	"github.com/keyledger/keyledger/gateway/writerclient"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/snapshot"
	"github.com/keyledger/keyledger/ledger/writer"
	"github.com/keyledger/keyledger/projections/resume"
)

// asOperator makes the CLI sign as user.
func asOperator(t *testing.T, user string) {
	t.Setenv("AWS_ACCESS_KEY_ID", testCredentials[user][0])
	t.Setenv("AWS_SECRET_ACCESS_KEY", testCredentials[user][1])
}

// TestRevokedGatewayServesNothing: an operator revokes a second gateway's
// writer with `keyledger writer revoke` through the first; the revoked one
// goes not ready and answers 503, the first serves on, the revoked key is
// never registered again, and audit verify names the revocation while the
// revoked writer's earlier events still verify. What the API refuses is
// refused with AWS errors.
func TestRevokedGatewayServesNothing(t *testing.T) {
	port := freePort(t)
	startNATS(t, t.TempDir(), port)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	gws := gateways(t, url, 2)
	a, b := gws[0], gws[1]
	ctx := context.Background()
	kb := b.createKey("written by b before its revocation")
	if _, err := b.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &kb, Plaintext: []byte("x")}); err != nil {
		t.Fatal(err)
	}

	asOperator(t, "alice")
	if code, out := cli(t, "writer", "revoke", "--url", a.endpoint, "--writer-id", b.writer.ID()); code == 0 || !strings.Contains(out, "AccessDenied") {
		t.Fatalf("alice (no keyledger:RevokeWriter) revoked a writer: exit %d\n%s", code, out)
	}
	asOperator(t, "admin")
	refusals := []struct {
		name string
		args []string
		want string
	}{
		{"its own writer", []string{"--url", b.endpoint, "--writer-id", b.writer.ID()}, "ValidationException"},
		{"an unknown writer", []string{"--url", a.endpoint, "--pubkey", writer.Generate().PublicText()}, "NotFoundException"},
		{"a malformed id", []string{"--url", a.endpoint, "--writer-id", "nope"}, "ValidationException"},
		{"a reason with a line break", []string{"--url", a.endpoint, "--writer-id", b.writer.ID(), "--reason", "a\nforged log line"}, "ValidationException"},
	}
	for _, r := range refusals {
		code, out := cli(t, append([]string{"writer", "revoke"}, r.args...)...)
		if code == 0 || !strings.Contains(out, r.want) || strings.Contains(out, "forged log line") {
			t.Fatalf("revoking %s: exit %d, want %s\n%s", r.name, code, r.want, out)
		}
	}
	if !b.node.Ledger.Registered(b.writer.ID()) {
		t.Fatal("a refused revocation revoked")
	}

	code, out := cli(t, "writer", "revoke", "--url", a.endpoint, "--writer-id", b.writer.ID(), "--reason", "host kms-2 decommissioned")
	if code != 0 || !strings.Contains(out, b.writer.ID()+" revoked (by writer "+a.writer.ID()) {
		t.Fatalf("writer revoke: exit %d\n%s", code, out)
	}
	waitUntil(t, 10*time.Second, "b to fold its revocation", func() bool {
		err := b.node.Ready(ctx)
		return err != nil && strings.Contains(err.Error(), "was revoked by writer "+a.writer.ID())
	})
	if !strings.Contains(b.logs.String(), "ALARM: this instance's writer key was revoked") {
		t.Error("no alarm in the revoked instance's log")
	}
	_, err := b.kms.CreateKey(ctx, &kms.CreateKeyInput{})
	wantCode(t, err, "ServiceUnavailableException")
	_, err = b.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &kb, Plaintext: []byte("x")})
	wantCode(t, err, "ServiceUnavailableException")
	// Restarted, it still serves nothing, and says why.
	b.logs.Reset()
	b.restart()
	_, err = b.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &kb, Plaintext: []byte("x")})
	wantCode(t, err, "ServiceUnavailableException")
	if err := b.node.Ready(ctx); err == nil || !strings.Contains(err.Error(), "was revoked") || !strings.Contains(b.logs.String(), "writer key was revoked") {
		t.Fatalf("the revoked instance restarted: ready %v\n%s", err, b.logs.String())
	}

	// The first serves on, on keys either wrote.
	if err := a.node.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	a.createKey("after the revocation")
	if _, err := a.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &kb, Plaintext: []byte("x")}); err != nil {
		t.Fatal(err)
	}

	if code, out := cli(t, "writer", "revoke", "--url", a.endpoint, "--pubkey", b.writer.PublicText()); code != 0 || !strings.Contains(out, "revoked already") {
		t.Fatalf("revoking again: exit %d\n%s", code, out)
	}
	// The last writer left is the one the request goes to, and b records nothing.
	if code, out := cli(t, "writer", "revoke", "--url", a.endpoint, "--writer-id", a.writer.ID()); code == 0 || !strings.Contains(out, "another registered instance") {
		t.Fatalf("revoking the last writer through itself: exit %d\n%s", code, out)
	}
	if code, out := cli(t, "writer", "revoke", "--url", b.endpoint, "--writer-id", a.writer.ID()); code == 0 || !strings.Contains(out, "ServiceUnavailableException") {
		t.Fatalf("the revoked instance revoking the last writer: exit %d\n%s", code, out)
	}
	if code, out := cli(t, "writer", "register", "--url", a.endpoint, "--pubkey", b.writer.PublicText()); code == 0 || !strings.Contains(out, "never registered again") {
		t.Fatalf("registering the revoked key again: exit %d\n%s", code, out)
	}
	code, out = cli(t, "writer", "list", "--url", a.endpoint)
	if code != 0 || !strings.Contains(out, a.writer.ID()+" "+a.writer.PublicText()) ||
		!strings.Contains(out, b.writer.ID()+" "+b.writer.PublicText()+" revoked by "+a.writer.ID()) {
		t.Fatalf("writer list: exit %d\n%s", code, out)
	}

	caughtUp(t, a)
	var revokedAt event.Record
	var before int
	for _, r := range a.records() {
		if rv, ok := r.Event.Body.(*event.WriterRevoked); ok {
			if rv.WriterID != b.writer.ID() || rv.RevokedBy != a.writer.ID() || rv.Reason != "host kms-2 decommissioned" || r.Writer != a.writer.ID() {
				t.Fatalf("revocation %+v signed by %s", rv, r.Writer)
			}
			revokedAt = r
		}
		if r.Writer == b.writer.ID() {
			before++
		}
	}
	if revokedAt.Event == nil || before < 3 {
		t.Fatalf("revocation %+v, %d events by b before it", revokedAt, before)
	}
	if a.node.Ledger.Quarantined() != 0 || b.node.Ledger.Quarantined() != 0 {
		t.Fatalf("quarantined %d on a, %d on b: the revoked instance published after it knew", a.node.Ledger.Quarantined(), b.node.Ledger.Quarantined())
	}
	code, out = cli(t, "audit", "verify", "--nats-url", url)
	if code != 0 || !strings.Contains(out, "OK:") ||
		!strings.Contains(out, "revoked writer: "+b.writer.ID()) || !strings.Contains(out, "by writer "+a.writer.ID()+" at event "+strconv.FormatUint(revokedAt.Pos, 10)) ||
		!strings.Contains(out, "written by writer "+b.writer.ID()) {
		t.Fatalf("audit verify: exit %d\n%s", code, out)
	}

	// Checkpoints name b apart, as revoked; an export verifies offline
	// and names the revocation too.
	cp, err := a.node.Checkpointer.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	body := string(cp)
	if strings.Contains(body, "keyledger-writer "+b.writer.ID()) || !strings.Contains(body, "keyledger-revoked-writer "+b.writer.ID()+" "+b.writer.PublicText()) ||
		!strings.Contains(body, "keyledger-writer "+a.writer.ID()) {
		t.Fatalf("checkpoint after the revocation:\n%s", body)
	}
	dir := t.TempDir()
	pub := filepath.Join(dir, "checkpoint.pub")
	os.WriteFile(pub, []byte(a.vkey+"\n"), 0o644)
	export := filepath.Join(dir, "export")
	if code, out := cli(t, "audit", "export", "--nats-url", url, "--out", export); code != 0 {
		t.Fatalf("export: %d %s", code, out)
	}
	code, out = cli(t, "audit", "verify", "--offline", export, "--pubkey", pub)
	if code != 0 || !strings.Contains(out, "OK:") || !strings.Contains(out, "revoked writer: "+b.writer.ID()) {
		t.Fatalf("audit verify --offline: exit %d\n%s", code, out)
	}
}

// TestRevokedKeyForgeryIsQuarantined: a thief holding a revoked instance's
// key file and NATS access publishes a correctly linked message, correctly
// signed with the revoked key, on its data chain: every reader quarantines
// it as revoked (the live fold, a restart resumed from a snapshot taken
// after the revocation, a full replay, audit verify), and nothing in it is
// applied. The revoked writer's events from before stay valid.
func TestRevokedKeyForgeryIsQuarantined(t *testing.T) {
	port := freePort(t)
	startNATS(t, t.TempDir(), port)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	gws := gateways(t, url, 2, withSnapshots(node.Snapshots{NotAtShutdown: true}))
	a, b := gws[0], gws[1]
	ctx := context.Background()
	kb := b.createKey("written by b before its revocation")
	if _, err := b.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &kb, Plaintext: []byte("x")}); err != nil { // on b's data chain
		t.Fatal(err)
	}
	thief := b.writer
	c := &writerclient.Client{Endpoint: a.endpoint, Region: testRegion,
		Credentials: sigv4.Credentials{AccessKeyID: testCredentials["admin"][0], Secret: testCredentials["admin"][1]}}
	if _, err := c.Revoke(ctx, thief.ID(), "", "key file stolen"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "b to fold its revocation", func() bool { return b.node.Ready(ctx) != nil })
	b.down() // decommissioned; its key and NATS access are the thief's
	caughtUp(t, a)
	if err := a.node.Snapshot(ctx); err != nil { // the resumed fold must know the revocation from it
		t.Fatal(err)
	}

	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	stream, err := js.Stream(ctx, "KEYLEDGER")
	if err != nil {
		t.Fatal(err)
	}
	name := chain.DataChain(thief.ID())
	subject := "keyledger.events." + name
	last, err := stream.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	lines, _ := event.SplitBatch(last.Data)
	prev := lines[len(lines)-1]
	link, _, _ := event.DecodeLink(prev)
	ev := &event.Event{Index: link.Index + 1, Prev: event.Of(prev), Chain: name, Time: a.clock.Now(), Operation: "CreateKey",
		Account: testAccount, Region: testRegion, KeyID: "0b3c7a9e-1d2f-4e5a-8b6c-7d8e9f0a1b2c",
		Body: &event.KeyCreated{KeySpec: "SYMMETRIC_DEFAULT", KeyUsage: "ENCRYPT_DECRYPT", Origin: "AWS_KMS"}}
	data := append(ev.AppendEncoded(nil), '\n')
	sig := thief.SignAt(name, last.Sequence, data)
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data, Header: nats.Header{writer.HeaderWriter: {thief.ID()},
		writer.HeaderSignature: {base64.StdEncoding.EncodeToString(sig)}}}, jetstream.WithExpectLastSequencePerSubject(last.Sequence)); err != nil {
		t.Fatal(err)
	}

	revokedOnly := func(when string) {
		t.Helper()
		waitUntil(t, 10*time.Second, when+": the forgery folded", func() bool { return a.node.Ledger.Quarantined() >= 1 })
		reasons := a.node.Ledger.QuarantineReasons()
		if n := a.node.Ledger.Quarantined(); n != 1 || len(reasons) != 1 || !strings.Contains(reasons[0], "writer revoked") || !strings.Contains(reasons[0], thief.ID()) {
			t.Fatalf("%s: %d quarantined: %v", when, n, reasons)
		}
		if _, err := a.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &ev.KeyID}); errCode(err) != "NotFoundException" {
			t.Fatalf("%s: the forged key: %v", when, err)
		}
		if _, err := a.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &kb, Plaintext: []byte("x")}); err != nil {
			t.Fatalf("%s: the key b created before its revocation: %v", when, err)
		}
	}
	revokedOnly("live")
	if !strings.Contains(a.logs.String(), "ALARM: ledger message quarantined") {
		t.Fatal("no alarm in the log")
	}
	a.logs.Reset()
	a.restart() // resumes from the snapshot, folds the forgery again
	revokedOnly("resumed from a snapshot")
	if !strings.Contains(a.logs.String(), "from_snapshot=true") {
		t.Fatalf("the restart did not resume from the snapshot:\n%s", a.logs.String())
	}
	full := start(t, withNATS(url), withOwnWriter(), withRoot(a.root), withOperator(testAccount), withSnapshots(node.Snapshots{Off: true}))
	waitUntil(t, 10*time.Second, "a full replay", func() bool { return full.node.Ledger.Quarantined() >= 1 })
	if r := full.node.Ledger.QuarantineReasons(); full.node.Ledger.Quarantined() != 1 || !strings.Contains(r[0], "writer revoked") {
		t.Fatalf("full replay: %d quarantined: %v", full.node.Ledger.Quarantined(), r)
	}
	caughtUp(t, a, full)
	if got, want := full.node.Ledger.Head(), a.node.Ledger.Head(); got != want || len(full.node.Ledger.Revoked()) != 1 {
		t.Fatalf("full replay at %+v with %v revoked; a at %+v", got, full.node.Ledger.Revoked(), want)
	}

	code, out := cli(t, "audit", "verify", "--nats-url", url)
	if code != 3 || !strings.Contains(out, "FAILED: 1 message(s) quarantined") || !strings.Contains(out, "writer revoked") ||
		!strings.Contains(out, thief.ID()) || !strings.Contains(out, "revoked writer: "+thief.ID()) {
		t.Fatalf("audit verify: exit %d\n%s", code, out)
	}
}

// TestGatewaysRevokingEachOther: two instances each asked at once to
// revoke the other. Revocations go on one control chain, so one wins; the
// other finds itself revoked (or the winner the last writer) and records
// nothing. The ledger keeps exactly one writer, and it serves.
func TestGatewaysRevokingEachOther(t *testing.T) {
	port := freePort(t)
	startNATS(t, t.TempDir(), port)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	gws := gateways(t, url, 2)
	ctx := context.Background()
	client := func(in *instance) *writerclient.Client {
		return &writerclient.Client{Endpoint: in.endpoint, Region: testRegion,
			Credentials: sigv4.Credentials{AccessKeyID: testCredentials["admin"][0], Secret: testCredentials["admin"][1]}}
	}
	errs := make([]error, 2)
	done := make(chan int)
	for i := range gws {
		go func() {
			_, errs[i] = client(gws[i]).Revoke(ctx, gws[1-i].writer.ID(), "", "")
			done <- i
		}()
	}
	<-done
	<-done
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("revocations answered %v and %v: want exactly one", errs[0], errs[1])
	}
	win := 0
	if errs[1] == nil {
		win = 1
	}
	if e := errs[1-win].Error(); !strings.Contains(e, "ServiceUnavailableException") && !strings.Contains(e, "KMSInvalidStateException") {
		t.Fatalf("the loser answered %v", e)
	}
	caughtUp(t, gws...)
	for _, in := range gws {
		if ws, rv := in.node.Ledger.Writers(), in.node.Ledger.Revoked(); len(ws) != 1 || ws[gws[win].writer.ID()] == "" || len(rv) != 1 {
			t.Fatalf("writers %v, revoked %v", ws, rv)
		}
	}
	if err := gws[win].node.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	gws[win].createKey("the survivor serves")
	code, out := cli(t, "audit", "verify", "--nats-url", url)
	if code != 0 {
		t.Fatalf("audit verify: exit %d\n%s", code, out)
	}
}

// TestRevocationAndRemovedSegments: a revocation inside segments later
// removed, and one after the cut of a removal whose base still names the
// revoked writer as live. Either way the instance restarts from the base,
// audit verify passes from it and names the revocation, the revoked key
// is not registered again, and a message it signs is quarantined as
// revoked (the base carries the revoked set).
func TestRevocationAndRemovedSegments(t *testing.T) {
	for _, revokeBeforeCut := range []bool{true, false} {
		t.Run(map[bool]string{true: "revoked in a removed segment", false: "revoked after the base"}[revokeBeforeCut], func(t *testing.T) {
			port := freePort(t)
			startNATS(t, t.TempDir(), port)
			url := "nats://127.0.0.1:" + strconv.Itoa(port)
			dir := t.TempDir()
			seed := make([]byte, 32)
			copy(seed, "revocation and removed segments")
			ka, err := writer.FromSeed(seed)
			if err != nil {
				t.Fatal(err)
			}
			wk := filepath.Join(dir, "writer.key")
			os.WriteFile(wk, []byte(base64.StdEncoding.EncodeToString(seed)+"\n"), 0o600)
			segs := func(i *instance) { i.ledgerCf.SegmentMessages = 3 }
			a := start(t, withNATS(url), withWriter(ka), withOperator(testAccount), segs)
			b := start(t, withNATS(url), withOwnWriter(), withRoot(a.root), withOperator(testAccount), segs)
			register(t, a, b)
			ctx := context.Background()
			k := b.createKey("written by b")
			encrypt := func(in *instance, n int) {
				for i := 0; i < n; i++ {
					if _, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x")}); err != nil {
						t.Fatal(err)
					}
				}
			}
			encrypt(b, 3)
			c := &writerclient.Client{Endpoint: a.endpoint, Region: testRegion,
				Credentials: sigv4.Credentials{AccessKeyID: testCredentials["admin"][0], Secret: testCredentials["admin"][1]}}
			revoke := func() {
				if _, err := c.Revoke(ctx, b.writer.ID(), "", ""); err != nil {
					t.Fatal(err)
				}
				waitUntil(t, 10*time.Second, "b to fold its revocation", func() bool { return b.node.Ready(ctx) != nil })
				b.down()
			}
			if revokeBeforeCut {
				revoke()
			}
			encrypt(a, 8)
			a.clock.Advance(2 * time.Hour)
			cut := a.clock.Now().Add(-time.Hour)
			if !revokeBeforeCut {
				revoke()
			}
			encrypt(a, 8)
			if _, err := a.node.Checkpointer.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
			pub := filepath.Join(dir, "checkpoint.pub")
			os.WriteFile(pub, []byte(a.vkey+"\n"), 0o644)
			archive := filepath.Join(dir, "archive")
			if code, out := cli(t, "audit", "archive", "--nats-url", url, "--before", cut.Format(time.RFC3339), "--out", archive, "--pubkey", pub, "--whole-segments"); code != 0 {
				t.Fatalf("archive: %d %s", code, out)
			}
			a.down()
			if code, out := cli(t, "audit", "prune", "--nats-url", url, "--archive", archive, "--pubkey", pub, "--writer-key", wk, "--retention", "24h"); code != 0 || !strings.Contains(out, "OK: removed events 0–") {
				t.Fatalf("prune: %d %s", code, out)
			}
			a.up()
			c.Endpoint = a.endpoint
			if err := a.node.Ready(ctx); err != nil {
				t.Fatalf("restarted from the base: %v", err)
			}
			if _, ok := a.node.Ledger.RevokedWriter(b.writer.ID()); !ok || a.node.Ledger.FirstIndex() == 0 {
				t.Fatalf("after the removal (first index %d): b not revoked", a.node.Ledger.FirstIndex())
			}
			if _, err := c.Register(ctx, b.writer.PublicText()); err == nil || !strings.Contains(err.Error(), "never registered again") {
				t.Fatalf("registering the revoked key after the removal: %v", err)
			}
			code, out := cli(t, "audit", "verify", "--nats-url", url, "--pubkey", pub)
			if code != 0 || !strings.Contains(out, "after removed segments") || !strings.Contains(out, "revoked writer: "+b.writer.ID()) {
				t.Fatalf("audit verify from the base: exit %d\n%s", code, out)
			}

			// The thief signs on b's data chain in the live segment.
			nc, err := nats.Connect(url)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			js, _ := jetstream.New(nc)
			all, err := a.node.Ledger.Segments(ctx)
			if err != nil {
				t.Fatal(err)
			}
			st, err := js.Stream(ctx, all[len(all)-1].Stream)
			if err != nil {
				t.Fatal(err)
			}
			info, err := st.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			name := chain.DataChain(b.writer.ID())
			ev := &event.Event{Index: 99, Chain: name, Time: a.clock.Now(), Operation: "Encrypt", Account: testAccount, Region: testRegion, Body: &event.APICall{}}
			data := append(ev.AppendEncoded(nil), '\n')
			if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: info.Config.Subjects[0] + "." + name, Data: data, Header: nats.Header{
				writer.HeaderWriter:    {b.writer.ID()},
				writer.HeaderSignature: {base64.StdEncoding.EncodeToString(b.writer.SignAt(name, 0, data))}}}); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, 10*time.Second, "the forgery folded", func() bool { return a.node.Ledger.Quarantined() >= 1 })
			if r := a.node.Ledger.QuarantineReasons(); len(r) != 1 || !strings.Contains(r[0], "writer revoked") {
				t.Fatalf("quarantined: %v", r)
			}
			code, out = cli(t, "audit", "verify", "--nats-url", url, "--pubkey", pub)
			if code != 3 || !strings.Contains(out, "writer revoked") {
				t.Fatalf("audit verify after the forgery: exit %d\n%s", code, out)
			}
		})
	}
}

// Finding: an instance trusts the snapshots its own writer key signed,
// even once the ledger revoked that key, though the revoked key may be
// the thief's (the reason to revoke it). With it and keyledger's NATS
// identity, the thief re-signs a genuine snapshot taken after the
// revocation with the revoked writer put back among the writers; the
// revoked instance, restarted with its key still in place, resumed from
// it, counted itself registered, went ready and answered requests as
// done whose events every other reader quarantines.
func TestRevokedInstanceTrustsNoSnapshotItsKeySigned(t *testing.T) {
	port := freePort(t)
	startNATS(t, t.TempDir(), port)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	gws := gateways(t, url, 2, withSnapshots(node.Snapshots{NotAtShutdown: true}))
	a, b := gws[0], gws[1]
	ctx := context.Background()
	c := &writerclient.Client{Endpoint: a.endpoint, Region: testRegion,
		Credentials: sigv4.Credentials{AccessKeyID: testCredentials["admin"][0], Secret: testCredentials["admin"][1]}}
	if _, err := c.Revoke(ctx, b.writer.ID(), "", "key file stolen"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "b to fold its revocation", func() bool { return b.node.Ready(ctx) != nil })
	b.down()
	a.createKey("after the revocation")
	caughtUp(t, a)
	if err := a.node.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.node.Checkpointer.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}

	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	store, err := snapshot.OpenExisting(ctx, nc, "KEYLEDGER")
	if err != nil {
		t.Fatal(err)
	}
	list, err := store.List(ctx)
	if err != nil || len(list) == 0 {
		t.Fatalf("snapshots %v, %v", list, err)
	}
	h, body, err := store.Load(ctx, list[0].Name, func(id string) ed25519.PublicKey {
		if id == a.writer.ID() {
			return a.writer.Public()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	im, err := resume.Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := im.Revoked[b.writer.ID()]; !ok {
		t.Fatalf("a's snapshot does not name b revoked: %v", im.Revoked)
	}
	im.Revoked = nil
	im.Writers[b.writer.ID()] = b.writer.PublicText()
	forged, err := im.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Put(ctx, h, forged, b.writer); err != nil { // the thief signs with the revoked key
		t.Fatal(err)
	}

	b.up() // restarted with the revoked key still in place
	if _, ok := b.node.Ledger.RevokedWriter(b.writer.ID()); !ok {
		t.Errorf("the restarted instance does not know its key revoked (writers %v)", b.node.Ledger.Writers())
	}
	if err := b.node.Ready(ctx); err == nil {
		t.Error("the revoked instance is ready")
	}
	_, err = b.kms.CreateKey(ctx, &kms.CreateKeyInput{})
	wantCode(t, err, "ServiceUnavailableException")
}

// Finding: the scheduler lease is a KV entry, which a revoked instance
// kept renewing: its scheduler could record nothing (every append 503),
// and no other instance could take the scheduler over, so due deletions
// and rotations stopped for the whole deployment while it ran. A revoked
// instance now gives the lease up; the other deletes the key when due.
func TestRevokedInstanceGivesUpTheScheduler(t *testing.T) {
	port := freePort(t)
	startNATS(t, t.TempDir(), port)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	gws := gateways(t, url, 2)
	ctx := context.Background()
	waitUntil(t, 10*time.Second, "an instance runs the scheduler", func() bool {
		return gws[0].node.Scheduler.Holding() || gws[1].node.Scheduler.Holding()
	})
	holder, other := gws[0], gws[1]
	if other.node.Scheduler.Holding() {
		holder, other = other, holder
	}
	key := other.createKey("deleted while the revoked instance runs")
	if _, err := other.kms.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &key, PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	c := &writerclient.Client{Endpoint: other.endpoint, Region: testRegion,
		Credentials: sigv4.Credentials{AccessKeyID: testCredentials["admin"][0], Secret: testCredentials["admin"][1]}}
	if _, err := c.Revoke(ctx, holder.writer.ID(), "", "decommissioned"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the holder to fold its revocation", func() bool { return holder.node.Ready(ctx) != nil })
	other.clock.Advance(8 * 24 * time.Hour)
	waitUntil(t, 15*time.Second, "the other instance deletes the key", func() bool {
		_, err := other.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &key})
		return errCode(err) == "NotFoundException"
	})
	if holder.node.Scheduler.Holding() || !other.node.Scheduler.Holding() {
		t.Fatalf("the revoked instance holds the scheduler: %v; the other: %v", holder.node.Scheduler.Holding(), other.node.Scheduler.Holding())
	}
}
