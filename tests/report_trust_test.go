package tests

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/embedded"
)

// TestReportTrustsSnapshotsPastANewerForeignCheckpoint: report compliance
// trusts snapshot writers from the newest checkpoint its --pubkey verifies.
// A newer message in the checkpoint stream that does not verify (another
// instance's key, or garbage from anyone who can write to NATS — the audit
// nkey can, through a push consumer) must not make it fold the whole
// ledger: the newest one that verifies still names the writers, as
// start-up's check (Checkpoints.Newest) already reads it.
func TestReportTrustsSnapshotsPastANewerForeignCheckpoint(t *testing.T) {
	in := start(t, withNATSListen())
	ctx := context.Background()
	someTraffic(t, in, "before")
	if err := in.node.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	someTraffic(t, in, "tail")
	if _, err := in.node.Checkpointer.Checkpoint(ctx); err != nil {
		t.Fatal(err)
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
	if _, err := js.Publish(ctx, "keyledger.checkpoints.KEYLEDGER", []byte("not a checkpoint\n")); err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(t.TempDir(), "checkpoint.pub")
	if err := os.WriteFile(pub, []byte(in.vkey), 0o600); err != nil {
		t.Fatal(err)
	}
	fromSnapshot, _ := reportFromSnapshotEqualsFull(t, "--nats-url", in.backend.ClientURL(), "--nats-creds", in.backend.AuditSeedFile(), "--pubkey", pub)
	if !strings.Contains(fromSnapshot.Summary, "answered from the snapshot") {
		t.Fatalf("report compliance folded the whole ledger past a newer checkpoint that does not verify: %+v", fromSnapshot)
	}
}
