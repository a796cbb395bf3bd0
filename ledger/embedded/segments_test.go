package embedded

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// TestAuditReadsEverySegment: the audit identity reads segment streams
// past the 128 it was once limited to — those that exist when the server
// starts and those created while it runs — and still nothing that is not
// the ledger's (a stream named like a segment of another prefix, the
// material bucket).
func TestAuditReadsEverySegment(t *testing.T) {
	dir := t.TempDir()
	opts := Options{DataDir: filepath.Join(dir, "js"), AuthDir: dir, Listen: "127.0.0.1:-1", NoSync: true}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := func() (*Server, jetstream.JetStream, *nats.Conn) {
		t.Helper()
		srv, err := Start(opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
		nc, err := srv.Connect("keyledger")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, _ := jetstream.New(nc)
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
		t.Cleanup(audit.Close)
		return srv, js, audit
	}
	create := func(js jetstream.JetStream, name, subject string) {
		t.Helper()
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subject}, AllowDirect: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, subject, []byte("in "+name)); err != nil {
			t.Fatal(err)
		}
	}
	segment := func(js jetstream.JetStream, n int) {
		t.Helper()
		create(js, fmt.Sprintf("KEYLEDGER_%d", n), fmt.Sprintf("keyledger.events.%d", n))
	}
	read := func(audit *nats.Conn, stream string) error {
		m, err := audit.Request("$JS.API.DIRECT.GET."+stream, []byte(`{"seq":1}`), time.Second)
		if err != nil {
			return err
		}
		if string(m.Data) != "in "+stream {
			return fmt.Errorf("read %q (%s)", m.Data, m.Header.Get("Status"))
		}
		return nil
	}

	srv, js, audit := start()
	for n := 1; n <= 130; n++ {
		segment(js, n)
	}
	create(js, "KV_keyledger-material", "$KV.keyledger-material.>")
	create(js, "OTHER_131", "other.131")
	readSoon := func(audit *nats.Conn, stream string) {
		t.Helper()
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if err = read(audit, stream); err == nil {
				return
			}
		}
		t.Fatalf("the audit identity cannot read %s: %v", stream, err)
	}
	for _, n := range []int{1, 128, 129, 130} {
		readSoon(audit, fmt.Sprintf("KEYLEDGER_%d", n))
	}
	for _, other := range []string{"KV_keyledger-material", "OTHER_131"} {
		if err := read(audit, other); err == nil {
			t.Fatalf("the audit identity reads %s", other)
		}
	}
	if got := srv.segments.highest("KEYLEDGER"); got < 130 {
		t.Fatalf("segments linked up to %d", got)
	}
	srv.Shutdown()

	// Restarted: the 130 existing segments are linked at start, and
	// segments made afterwards, past the look-ahead, as they appear.
	srv, js, audit = start()
	if got := srv.segments.highest("KEYLEDGER"); got != 130+segmentLookahead {
		t.Fatalf("at start, segments linked up to %d, want %d", got, 130+segmentLookahead)
	}
	if err := read(audit, "KEYLEDGER_130"); err != nil {
		t.Fatalf("a segment from before the restart: %v", err)
	}
	for n := 131; n <= 150; n++ {
		segment(js, n)
	}
	readSoon(audit, "KEYLEDGER_150")
	if err := read(audit, "KV_keyledger-material"); err == nil {
		t.Fatal("the audit identity reads the material bucket after a restart")
	}
}
