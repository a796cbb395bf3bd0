package embedded

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// The audit identity may subscribe to _INBOX.> for its own replies; it must
// not see the replies keyledger's own connection gets (KV entries, acks).
func TestAuditSubscriberCannotReadKeyledgerReplies(t *testing.T) {
	dir := t.TempDir()
	srv, err := Start(Options{DataDir: filepath.Join(dir, "js"), AuthDir: dir, Listen: "127.0.0.1:-1", NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	seed, err := os.ReadFile(srv.AuditSeedFile())
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(seed))))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	audit, err := nats.Connect(srv.ClientURL(), nats.Nkey(pub, kp.Sign))
	if err != nil {
		t.Fatal(err)
	}
	defer audit.Close()
	var seen atomic.Int64
	for _, subj := range []string{"_INBOX.>", ">"} {
		sub, err := audit.Subscribe(subj, func(*nats.Msg) { seen.Add(1) })
		if err == nil {
			defer sub.Unsubscribe()
		}
	}
	if err := audit.Flush(); err != nil {
		t.Fatal(err)
	}

	nc, err := srv.Connect("keyledger")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "secretish"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "m", []byte("wrapped material")); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	// Round-trip on the audit connection so anything routed to it has arrived.
	if err := audit.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := seen.Load(); n != 0 {
		t.Fatalf("the audit identity received %d of keyledger's replies", n)
	}
}

// The audit identity reads through its account's imports: stream names and
// info, single and batched direct gets (many responses to one request) and
// gets from the stream leader all answer, without error, at its own inbox.
func TestAuditIdentityReadsThroughItsAccount(t *testing.T) {
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
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "KEYLEDGER", Subjects: []string{"keyledger.events"}, AllowDirect: true}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"one", "two", "three"} {
		if _, err := js.Publish(ctx, "keyledger.events", []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	seed, err := os.ReadFile(srv.AuditSeedFile())
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(seed))))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	audit, err := nats.Connect(srv.ClientURL(), nats.Nkey(pub, kp.Sign))
	if err != nil {
		t.Fatal(err)
	}
	defer audit.Close()
	for subj, body := range map[string]string{
		"$JS.API.STREAM.INFO.KEYLEDGER":    "",
		"$JS.API.STREAM.NAMES":             "",
		"$JS.API.STREAM.MSG.GET.KEYLEDGER": `{"seq":2}`,
	} {
		m, err := audit.Request(subj, []byte(body), 2*time.Second)
		if err != nil || strings.Contains(string(m.Data), `"error"`) {
			t.Errorf("%s: %v %s", subj, err, m.Data)
		}
	}
	if m, err := audit.Request("$JS.API.DIRECT.GET.KEYLEDGER", []byte(`{"seq":2}`), 2*time.Second); err != nil || string(m.Data) != "two" {
		t.Errorf("direct get: %v %+v", err, m)
	}
	inbox := audit.NewInbox()
	sub, err := audit.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.PublishRequest("$JS.API.DIRECT.GET.KEYLEDGER", inbox, []byte(`{"seq":1,"batch":10}`)); err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		m, err := sub.NextMsg(2 * time.Second)
		if err != nil {
			t.Fatalf("batched direct get after %q: %v", got, err)
		}
		if m.Header.Get("Status") == "204" {
			break
		}
		got = append(got, string(m.Data))
	}
	if strings.Join(got, ",") != "one,two,three" {
		t.Errorf("batched direct get: %q", got)
	}
}
