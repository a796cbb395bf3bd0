package embedded

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

func auditConn(t *testing.T, srv *Server) *nats.Conn {
	t.Helper()
	seed, err := os.ReadFile(srv.AuditSeedFile())
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(seed))))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	nc, err := nats.Connect(srv.ClientURL(), nats.Nkey(pub, kp.Sign),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})) // refusals are expected; the tests check what arrives
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestAuditorCannotAnswerForTheServer: every auditor uses the one audit
// nkey, so all share the audit account. A reply subject is not subject to
// publish permissions, so one auditor can have the server publish into
// what another auditor reads: the live feed (keyledger.audit.>), or the
// inbox of another's batched direct get (an error status ends that read,
// a message of another stream with the sequence it waits for takes its
// place).
func TestAuditorCannotAnswerForTheServer(t *testing.T) {
	t.Skip("not fixed: nats-server publishes a request's answer at whatever reply subject the requester names, and all auditors share the audit nkey and its account. " +
		"Batched direct gets now ignore another stream's answer (directget), but a status answer (408) still ends another auditor's read, and the live feed takes any answer " +
		"(ledger/feed Feed.Subscribe could drop messages without Keyledger-Index or with Nats-Stream; the real fix is an account per auditor: within one account, permissions do not restrict reply subjects)")
	dir := t.TempDir()
	srv, err := Start(Options{DataDir: filepath.Join(dir, "js"), AuthDir: dir, Listen: "127.0.0.1:-1", NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect("keyledger")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, s := range []string{"KEYLEDGER", "KEYLEDGER_CHECKPOINTS"} {
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: s, Subjects: []string{strings.ToLower(s)}, AllowDirect: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, strings.ToLower(s), []byte("in "+s)); err != nil {
			t.Fatal(err)
		}
	}
	victim, attacker := auditConn(t, srv), auditConn(t, srv)
	feed, err := victim.SubscribeSync("keyledger.audit.>")
	if err != nil {
		t.Fatal(err)
	}
	inbox := victim.NewInbox()
	replies, err := victim.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	if err := victim.Flush(); err != nil {
		t.Fatal(err)
	}
	for subj, body := range map[string]string{
		"$JS.API.DIRECT.GET.KEYLEDGER_CHECKPOINTS": `{"seq":1}`, // another stream's message
		"$JS.API.DIRECT.GET.KEYLEDGER":             ``,          // 408 Empty Request
	} {
		for _, reply := range []string{"keyledger.audit.x.key.Encrypt", inbox} {
			if err := attacker.PublishRequest(subj, reply, []byte(body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := attacker.Flush(); err != nil {
		t.Fatal(err)
	}
	for name, sub := range map[string]*nats.Subscription{"live feed": feed, "direct-get inbox": replies} {
		if m, err := sub.NextMsg(time.Second); err == nil {
			t.Errorf("an auditor had the server publish into another auditor's %s: %s %q %q", name, m.Subject, m.Header, m.Data)
		}
	}
}

// TestAuditRequestsWriteNothingOfKeyledgers: the requests the audit
// identity may make, with the headers and bodies that make nats-server
// publish elsewhere or check expectations (a trace destination in
// keyledger's subjects, Nats-Expected-*, multi-subject and filtered
// reads), have nothing written or delivered in keyledger's account.
func TestAuditRequestsWriteNothingOfKeyledgers(t *testing.T) {
	dir := t.TempDir()
	srv, err := Start(Options{DataDir: filepath.Join(dir, "js"), AuthDir: dir, Listen: "127.0.0.1:-1", NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect("keyledger")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "KEYLEDGER", Subjects: []string{"keyledger.events"}, AllowDirect: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "keyledger.events", []byte("one")); err != nil {
		t.Fatal(err)
	}
	seen, err := nc.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	audit := auditConn(t, srv)
	inbox := audit.NewInbox()
	for subj, body := range map[string]string{
		"$JS.API.STREAM.INFO.KEYLEDGER":                 `{"subjects_filter":">","deleted_details":true}`,
		"$JS.API.STREAM.NAMES":                          `{"subject":"keyledger.>"}`,
		"$JS.API.DIRECT.GET.KEYLEDGER":                  `{"multi_last":[">"],"batch":1000000}`,
		"$JS.API.STREAM.MSG.GET.KEYLEDGER":              `{"last_by_subj":"keyledger.events"}`,
		"$JS.API.DIRECT.GET.KEYLEDGER.keyledger.events": ``,
		"$JS.API.INFO":                                  ``,
	} {
		m := nats.NewMsg(subj)
		m.Reply = inbox
		m.Data = []byte(body)
		m.Header.Set("Nats-Trace-Dest", "keyledger.events")
		m.Header.Set("Nats-Expected-Last-Sequence", "0")
		m.Header.Set("Nats-Msg-Id", "x")
		m.Header.Set("Nats-Rollup", "all")
		if err := audit.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := audit.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // what the server would publish, it publishes at once
	for {
		m, err := seen.NextMsg(100 * time.Millisecond)
		if err != nil {
			break
		}
		if !strings.HasPrefix(m.Subject, "$JS.EVENT.ADVISORY.") { // the server's own API advisories
			t.Errorf("keyledger's account got %s %q", m.Subject, m.Data)
		}
	}
	info, err := st.Info(ctx)
	if err != nil || info.State.Msgs != 1 {
		t.Fatalf("the ledger stream after the audit requests: %v %+v", err, info.State)
	}
}
