package embedded

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestAuditReadsAfterHeal: reopening JetStream after a failed write (the
// disk-full heal) brings back keyledger's account's JetStream, and with it
// what the audit account imports from there.
func TestAuditReadsAfterHeal(t *testing.T) {
	dir := t.TempDir()
	srv, err := Start(Options{DataDir: filepath.Join(dir, "js"), AuthDir: dir, Listen: "127.0.0.1:-1", NoSync: true, MinFreeDisk: -1})
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
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "KEYLEDGER", Subjects: []string{"keyledger.events"}, AllowDirect: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "keyledger.events", []byte("before")); err != nil {
		t.Fatal(err)
	}
	srv.storage.writeFailed("Filestore [KEYLEDGER] Critical write error: write /d/1.blk: no space left on device")
	if err := srv.CheckWrite(1); err != nil {
		t.Fatalf("CheckWrite did not heal: %v", err)
	}
	if _, err := js.Publish(ctx, "keyledger.events", []byte("after")); err != nil {
		t.Fatalf("publish after the heal: %v", err)
	}
	audit := auditConn(t, srv)
	for seq, want := range map[int]string{1: "before", 2: "after"} {
		m, err := audit.Request("$JS.API.DIRECT.GET.KEYLEDGER", []byte(fmt.Sprintf(`{"seq":%d}`, seq)), 2*time.Second)
		if err != nil || string(m.Data) != want {
			t.Errorf("audit direct get %d after the heal: %v %+v", seq, err, m)
		}
	}
	if m, err := audit.Request("$JS.API.STREAM.INFO.KEYLEDGER", nil, 2*time.Second); err != nil || !strings.Contains(string(m.Data), `"config"`) {
		t.Errorf("audit stream info after the heal: %v %+v", err, m)
	}
}
