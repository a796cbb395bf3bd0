package ledger

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/keyledger/keyledger/ledger/embedded"
)

// The subscribe-only audit identity opens the checkpoint stream and reads
// the newest checkpoint (`audit checkpoint --nats-creds nats-audit.nk`); it
// used to try a stream update, be refused, and retry until its deadline.
func TestAuditIdentityReadsCheckpoints(t *testing.T) {
	dir := t.TempDir()
	srv, err := embedded.Start(embedded.Options{DataDir: filepath.Join(dir, "js"), AuthDir: dir, Listen: "127.0.0.1:-1", NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect("keyledger")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	own, err := OpenCheckpoints(ctx, nc, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := own.Put(ctx, []byte("signed checkpoint")); err != nil {
		t.Fatal(err)
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
	cps, err := OpenCheckpoints(ctx, audit, "", 1)
	if err != nil {
		t.Fatalf("audit identity: %v", err)
	}
	got, err := cps.Latest(ctx)
	if err != nil || string(got) != "signed checkpoint" {
		t.Fatalf("latest: %q, %v", got, err)
	}
}
