package tests

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/keyledger/keyledger/ledger/offline"
)

// TestArchiveJoinsTheLiveLedger archives the events older than a cut with
// `audit archive`, checks `audit verify --offline` accepts the archive with
// a later export, and refuses tampered copies of the archive.
func TestArchiveJoinsTheLiveLedger(t *testing.T) {
	port := freePort(t)
	startNATS(t, t.TempDir(), port)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	in := start(t, withNATS(url))
	ctx := context.Background()
	k := in.createKey("archive")
	encrypt := func(n int) {
		for i := 0; i < n; i++ {
			if _, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x")}); err != nil {
				t.Fatal(err)
			}
		}
	}
	encrypt(5)
	in.clock.Advance(400 * 24 * time.Hour)
	cut := in.clock.Now().Add(-time.Hour)
	encrypt(5)
	if _, err := in.node.Checkpointer.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pub := filepath.Join(dir, "checkpoint.pub")
	os.WriteFile(pub, []byte(in.vkey+"\n"), 0o644)
	archive := filepath.Join(dir, "archive")
	code, out := cli(t, "audit", "archive", "--nats-url", url, "--before", cut.Format(time.RFC3339), "--out", archive, "--pubkey", pub)
	if code != 0 || !strings.Contains(out, "OK: archived events 0–") {
		t.Fatalf("archive: %d %s", code, out)
	}
	if code, out := cli(t, "audit", "archive", "--nats-url", url, "--before", cut.Format(time.RFC3339), "--out", archive, "--pubkey", pub); code == 0 {
		t.Fatalf("an archive was written over an existing one: %s", out)
	}
	export := filepath.Join(dir, "export")
	if code, out := cli(t, "audit", "export", "--nats-url", url, "--out", export); code != 0 {
		t.Fatalf("export: %d %s", code, out)
	}
	code, out = cli(t, "audit", "verify", "--offline", export, "--pubkey", pub, "--archive", archive)
	if code != 0 || !strings.Contains(out, "join into one ledger") {
		t.Fatalf("archive + export: %d %s", code, out)
	}

	tampered := func(t *testing.T, name string, fn func([]byte) []byte) string {
		t.Helper()
		cp := filepath.Join(t.TempDir(), "archive")
		os.Mkdir(cp, 0o755)
		entries, _ := os.ReadDir(archive)
		for _, e := range entries {
			b, _ := os.ReadFile(filepath.Join(archive, e.Name()))
			if e.Name() == name {
				b = fn(b)
			}
			os.WriteFile(filepath.Join(cp, e.Name()), b, 0o644)
		}
		return cp
	}
	otherInstance := start(t)
	otherCheckpoint, err := otherInstance.node.Checkpointer.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		file string
		fn   func([]byte) []byte
	}{
		"changed event": {offline.EventsFile, func(b []byte) []byte { return bytes.Replace(b, []byte(`"Encrypt"`), []byte(`"Decrypt"`), 1) }},
		"dropped event": {offline.EventsFile, func(b []byte) []byte {
			ls := bytes.SplitAfter(b, []byte("\n"))
			return bytes.Join(append(ls[:2:2], ls[3:]...), nil)
		}},
		"forged checkpoint": {offline.CheckpointFile, func([]byte) []byte { return otherCheckpoint }},
	} {
		t.Run(name, func(t *testing.T) {
			bad := tampered(t, tc.file, tc.fn)
			code, out := cli(t, "audit", "verify", "--offline", export, "--pubkey", pub, "--archive", bad)
			if code != 1 || !strings.Contains(out, "FAILED") {
				t.Fatalf("tampered archive: %d %s", code, out)
			}
		})
	}
}
