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

// connectAs connects to srv's listener with the nkey seed in file.
func connectAs(t *testing.T, srv *Server, file string) *nats.Conn {
	t.Helper()
	seed, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(seed))))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	nc, err := nats.Connect(srv.ClientURL(), nats.Nkey(pub, kp.Sign))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// The backup identity reads the ledger and the material bucket and
// changes nothing; the audit identity does not read the material bucket.
func TestBackupIdentityReadsOnly(t *testing.T) {
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
	if _, err := js.Publish(ctx, "keyledger.events", []byte("event")); err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "keyledger-material"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "m1", []byte("sealed material")); err != nil {
		t.Fatal(err)
	}
	if "KV_"+"keyledger-material" != MaterialStream {
		t.Fatalf("MaterialStream %q is not the material bucket's stream", MaterialStream)
	}

	backup := connectAs(t, srv, srv.BackupSeedFile())
	bjs, _ := jetstream.New(backup)
	bkv, err := bjs.KeyValue(ctx, "keyledger-material")
	if err != nil {
		t.Fatal(err)
	}
	if e, err := bkv.Get(ctx, "m1"); err != nil || string(e.Value()) != "sealed material" {
		t.Fatalf("the backup identity reads the material bucket: %v", err)
	}
	if m, err := backup.Request("$JS.API.DIRECT.GET.KEYLEDGER", []byte(`{"seq":1}`), 2*time.Second); err != nil || string(m.Data) != "event" {
		t.Fatalf("the backup identity reads the ledger: %v", err)
	}
	for _, subj := range []string{"$JS.API.STREAM.UPDATE.KEYLEDGER", "$JS.API.STREAM.CREATE.X", "$JS.API.STREAM.DELETE.KV_keyledger-material",
		"$KV.keyledger-material.m1", "keyledger.events"} {
		if m, err := backup.Request(subj, []byte(`{}`), 500*time.Millisecond); err == nil {
			t.Errorf("the backup identity published to %s: %s", subj, m.Data)
		}
	}
	if e, err := kv.Get(ctx, "m1"); err != nil || string(e.Value()) != "sealed material" {
		t.Fatalf("material after the backup identity's attempts: %v", err)
	}
	if names := js.StreamNames(ctx); names.Err() == nil {
		n := 0
		for range names.Name() {
			n++
		}
		if n != 2 {
			t.Errorf("%d streams after the backup identity's attempts, want 2", n)
		}
	}
	if sub, err := backup.SubscribeSync("keyledger.audit.>"); err == nil {
		backup.Flush()
		nc.Publish("keyledger.audit.KEYLEDGER", []byte("an event"))
		nc.Flush()
		if _, err := sub.NextMsg(200 * time.Millisecond); err == nil {
			t.Error("the backup identity reads the live feed")
		}
	}

	audit := connectAs(t, srv, srv.AuditSeedFile())
	if m, err := audit.Request("$JS.API.DIRECT.GET."+MaterialStream+".$KV.keyledger-material.m1", nil, 500*time.Millisecond); err == nil && string(m.Data) == "sealed material" {
		t.Error("the audit identity reads the material bucket")
	}
}
