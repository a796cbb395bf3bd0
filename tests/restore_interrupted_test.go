package tests

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/backend"
	"github.com/keyledger/keyledger/ledger/backup"
	"github.com/keyledger/keyledger/ledger/material"
	"github.com/keyledger/keyledger/projections/keystate"
)

// dyingMaterials is a material store whose process "dies" (its context is
// cancelled) once a material has been stored, as a crash part-way through
// a restore would leave it.
type dyingMaterials struct {
	*material.Store
	die context.CancelFunc
}

func (d dyingMaterials) Put(ctx context.Context, id string, wrapped []byte) error {
	err := d.Store.Put(ctx, id, wrapped)
	d.die()
	return err
}

// TestInterruptedRestoreIsRefused: a restore into NATS that stops part-way
// leaves a deployment that `audit verify` and `serve` refuse as truncated
// (its checkpoints are stored before its events), and a second restore
// names it as an unfinished restore instead of adding to it.
func TestInterruptedRestoreIsRefused(t *testing.T) {
	portA, portB := freePort(t), freePort(t)
	startNATS(t, t.TempDir(), portA)
	startNATS(t, t.TempDir(), portB)
	urlA, urlB := "nats://127.0.0.1:"+strconv.Itoa(portA), "nats://127.0.0.1:"+strconv.Itoa(portB)
	a := start(t, withNATS(urlA))
	key := a.createKey("interrupted")
	if _, err := a.kms.Encrypt(context.Background(), &kms.EncryptInput{KeyId: &key, Plaintext: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	bk := filepath.Join(t.TempDir(), "backup")
	cpKey := filepath.Join(a.dir, "checkpoint.key")
	bkey := filepath.Join(t.TempDir(), "backup.key")
	if code, out := cli(t, "backup", "--nats-url", urlA, "--checkpoint-key", cpKey, "--signing-key", bkey, "--out", bk); code != 0 {
		t.Fatalf("backup: exit %d\n%s", code, out)
	}
	vkey, err := os.ReadFile(cpKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	bvkey, err := os.ReadFile(bkey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	bu, err := backup.Open(bk, backup.Options{Verifier: string(vkey), BackupVerifier: string(bvkey),
		Fresh: backup.Freshness{AllowRollback: true}, Fold: func() backup.Fold { return keystate.New() }})
	if err != nil {
		t.Fatal(err)
	}

	// The interrupted restore.
	b, err := backend.Connect(urlB, backend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, die := context.WithCancel(context.Background())
	l, err := b.OpenLedger(ctx, ledger.Config{Stream: "KEYLEDGER", Writer: a.writer})
	if err != nil {
		t.Fatal(err)
	}
	cps, err := b.OpenCheckpoints(ctx, "KEYLEDGER")
	if err != nil {
		t.Fatal(err)
	}
	mats, err := b.OpenMaterials(ctx, material.Config{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bu.Restore(ctx, backup.Target{Ledger: l, Checkpoints: cps, Materials: dyingMaterials{mats, die}, Fold: keystate.New()})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("the interrupted restore: %v, want it cut short", err)
	}
	b.Close()

	code, out, _ := runWithin(t, 20*time.Second, "audit", "verify", "--nats-url", urlB)
	if code == 0 || !strings.Contains(out, "ledger truncated") {
		t.Fatalf("audit verify on a half-restored deployment: exit %d, want non-zero and \"ledger truncated\":\n%s", code, out)
	}
	wk := filepath.Join(t.TempDir(), "writer.key")
	seed := sha256.Sum256([]byte("keyledger test writer " + urlA))
	if err := os.WriteFile(wk, []byte(base64.StdEncoding.EncodeToString(seed[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	copyFile(t, wk, filepath.Join(dir, "writer.key"))
	code, out, _ = runWithin(t, 20*time.Second, "serve", "--nats-url", urlB, "--data-dir", dir,
		"--checkpoint-key", cpKey, "--listen", "127.0.0.1:"+strconv.Itoa(freePort(t)))
	if code == 0 || !strings.Contains(out, "ledger truncated") {
		t.Fatalf("serve on a half-restored deployment: exit %d, want non-zero and \"ledger truncated\":\n%s", code, out)
	}
	code, out = cli(t, "restore", "--from", bk, "--nats-url", urlB, "--pubkey", cpKey+".pub", "--writer-key", wk,
		"--backup-pubkey", bkey+".pub", "--allow-rollback")
	if code != 1 || !strings.Contains(out, "unfinished restore") {
		t.Fatalf("restore again into the half-restored deployment: exit %d, want 1 naming the unfinished restore:\n%s", code, out)
	}
	t.Log(strings.TrimSpace(out))
}
