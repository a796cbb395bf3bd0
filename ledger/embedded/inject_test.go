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
	return auditorConn(t, srv, "")
}

// auditorConn connects as the named auditor ("" the default one).
func auditorConn(t *testing.T, srv *Server, name string) *nats.Conn {
	t.Helper()
	seed, err := os.ReadFile(srv.AuditorSeedFile(name))
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

// TestAuditorCannotAnswerForTheServer: a reply subject is not subject to
// publish permissions, so within one NATS account one client can have the
// server publish into what another reads: the live feed
// (keyledger.audit.>), or the inbox of a batched direct get (an error
// status ends that read, a message of another stream with the sequence it
// waits for takes its place). Each auditor has an account of its own, so
// no auditor reaches another's (the default one's or a named one's).
func TestAuditorCannotAnswerForTheServer(t *testing.T) {
	dir := t.TempDir()
	srv, err := Start(Options{DataDir: filepath.Join(dir, "js"), AuthDir: dir, Listen: "127.0.0.1:-1", NoSync: true, Auditors: []string{"acme", "mallory"}})
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
	// The last case is the control: two connections of one auditor share
	// its account, and there the server does answer into the other's
	// subscriptions, so the test would see it across auditors too.
	for _, tc := range []struct{ victim, attacker string }{{"", "mallory"}, {"acme", "mallory"}, {"mallory", ""}, {"acme", "acme"}} {
		victim, attacker := auditorConn(t, srv, tc.victim), auditorConn(t, srv, tc.attacker)
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
		// The attacker's own inbox: its answers arrive there, so the
		// requests did reach the server and were answered.
		own, err := attacker.SubscribeSync(attacker.NewInbox())
		if err != nil {
			t.Fatal(err)
		}
		for subj, body := range map[string]string{
			"$JS.API.DIRECT.GET.KEYLEDGER_CHECKPOINTS": `{"seq":1}`, // another stream's message
			"$JS.API.DIRECT.GET.KEYLEDGER":             ``,          // 408 Empty Request
		} {
			for _, reply := range []string{"keyledger.audit.x.key.Encrypt", inbox, own.Subject} {
				if err := attacker.PublishRequest(subj, reply, []byte(body)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := attacker.Flush(); err != nil {
			t.Fatal(err)
		}
		answers := 0
		for {
			m, err := own.NextMsg(2 * time.Second)
			if err != nil {
				break
			}
			if len(m.Data) > 0 || m.Header.Get("Status") != "" {
				answers++
			}
			if answers == 2 {
				break
			}
		}
		if answers != 2 {
			t.Fatalf("%q → %q: the attacker's own requests got %d answers, want 2", tc.attacker, tc.victim, answers)
		}
		for name, sub := range map[string]*nats.Subscription{"live feed": feed, "direct-get inbox": replies} {
			m, err := sub.NextMsg(200 * time.Millisecond)
			switch {
			case tc.victim == tc.attacker && err != nil:
				t.Errorf("control: one connection of auditor %q did not have the server publish into another's %s", tc.victim, name)
			case tc.victim != tc.attacker && err == nil:
				t.Errorf("auditor %q had the server publish into auditor %q's %s: %s %q %q", tc.attacker, tc.victim, name, m.Subject, m.Header, m.Data)
			}
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
