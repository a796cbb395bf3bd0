package tests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/keyledger/keyledger/ledger/segment"
)

// TestBackupAfterPrune: retention does not end backups. A real `keyledger
// serve` rolls its ledger into small segments; the old ones are archived
// and pruned (`audit archive --whole-segments`, `audit prune`), the server
// runs on from the base and stops. `keyledger backup` of the pruned data
// directory holds the base, the snapshot the state starts from and the
// live segments; `keyledger restore` reproduces the base (the same base in
// an export of both), `audit verify` passes on it, and the restored server
// decrypts ciphertexts of keys created before the base, after it and
// after the prune, and knows their aliases.
func TestBackupAfterPrune(t *testing.T) {
	dataDir := t.TempDir()
	port := freePort(t)
	clockFile := filepath.Join(t.TempDir(), "clock-offset") // the restored server reads it too
	setClock := func(d time.Duration) {
		if err := os.WriteFile(clockFile+".tmp", []byte(d.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(clockFile+".tmp", clockFile); err != nil {
			t.Fatal(err)
		}
	}
	setClock(-72 * time.Hour) // the first events are three days old
	serve := func() *exec.Cmd {
		return serveWithArgs(t, dataDir, port, "--unsafe-clock-offset-file", clockFile, "--segment-messages", "3")
	}
	srv := serve()
	admin := testCredentials["admin"]
	c := newClient("http://127.0.0.1:"+strconv.Itoa(port), admin[0], admin[1])
	ctx := context.Background()
	type sealed struct{ plain, blob []byte }
	var blobs []sealed
	newKey := func(alias string) string {
		k, err := c.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String(alias)})
		if err != nil {
			t.Fatal(err)
		}
		id := *k.KeyMetadata.KeyId
		if _, err := c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/" + alias), TargetKeyId: &id}); err != nil {
			t.Fatal(err)
		}
		for i := range 4 {
			plain := []byte(alias + " " + strconv.Itoa(i))
			e, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: &id, Plaintext: plain})
			if err != nil {
				t.Fatal(err)
			}
			blobs = append(blobs, sealed{plain, e.CiphertextBlob})
		}
		return id
	}
	newKey("before-the-base")
	setClock(0)
	newKey("after-the-base")
	stop(t, srv)

	archive := filepath.Join(t.TempDir(), "archive")
	cut := time.Now().Add(-24 * time.Hour).UTC().Format(time.RFC3339)
	if code, out := cli(t, "audit", "archive", "--data-dir", dataDir, "--before", cut, "--out", archive, "--whole-segments"); code != 0 {
		t.Fatalf("audit archive: exit %d\n%s", code, out)
	}
	if code, out := cli(t, "audit", "prune", "--data-dir", dataDir, "--archive", archive, "--retention", "24h"); code != 0 || !strings.Contains(out, "OK: removed events 0–") {
		t.Fatalf("audit prune: exit %d\n%s", code, out)
	}
	srv = serve() // runs on from the base
	newKey("after-the-prune")
	doomed := newDoomedKey(t, c, dataDir) // its deletion falls due after the backup
	stop(t, srv)

	signingKey := filepath.Join(t.TempDir(), "backup.key")
	bk := filepath.Join(t.TempDir(), "backup")
	code, out := cli(t, "backup", "--data-dir", dataDir, "--signing-key", signingKey, "--out", bk)
	if code != 0 || !strings.Contains(out, "OK: backed up") || !strings.Contains(out, "starts after removed (archived) segments") {
		t.Fatalf("backup of a pruned ledger: exit %d\n%s", code, out)
	}
	t.Log(strings.TrimSpace(out))
	for _, name := range []string{"base.json", "snapshot"} {
		if _, err := os.Stat(filepath.Join(bk, name)); err != nil {
			t.Fatalf("the backup of a pruned ledger has no %s: %v", name, err)
		}
	}

	// The deployment runs on and deletes a key; its export (from the base)
	// is the deletion journal.
	setClock(8 * 24 * time.Hour)
	srv = serve()
	waitForFirstDeletion(t, c, []*doomedKey{doomed})
	stop(t, srv)
	journal := filepath.Join(t.TempDir(), "journal")
	if code, out := cli(t, "audit", "export", "--data-dir", dataDir, "--out", journal); code != 0 {
		t.Fatalf("audit export: exit %d\n%s", code, out)
	}

	restoreArgs := func(from, to string, extra ...string) []string {
		return append([]string{"restore", "--from", from, "--data-dir", to, "--pubkey", filepath.Join(dataDir, "checkpoint.key.pub"),
			"--backup-pubkey", signingKey + ".pub", "--writer-key", filepath.Join(dataDir, "writer.key"), "--allow-rollback"}, extra...)
	}
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, dir string)
	}{
		{"the base's frontier", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "base.json")
			var rec map[string]any
			data, _ := os.ReadFile(p)
			if err := json.Unmarshal(data, &rec); err != nil {
				t.Fatal(err)
			}
			fr := rec["base"].(map[string]any)["frontier"].([]any)
			fr[0] = base64.StdEncoding.EncodeToString(make([]byte, 32))
			data, _ = json.Marshal(rec)
			os.WriteFile(p, data, 0o600)
		}},
		{"the snapshot's body", func(t *testing.T, dir string) {
			// The state changed and its digest in the header redone: only
			// the writer's signature over the header can tell.
			p := filepath.Join(dir, "snapshot")
			data, _ := os.ReadFile(p)
			head, body, _ := bytes.Cut(data, []byte("\n"))
			body = bytes.Replace(body, []byte("before-the-base"), []byte("BEFORE-the-base"), 1)
			var h map[string]any
			if err := json.Unmarshal(head, &h); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(body)
			h["bodySha256"] = hex.EncodeToString(sum[:])
			head, _ = json.Marshal(h)
			os.WriteFile(p, append(append(head, '\n'), body...), 0o600)
		}},
	} {
		t.Run("changed: "+tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "copy")
			copyTree(t, bk, dir)
			tc.change(t, dir)
			redoManifest(t, dir)
			signManifestFile(t, dir, signingKey)
			code, out := cli(t, restoreArgs(dir, filepath.Join(t.TempDir(), "r"))...)
			if code != 1 || !strings.Contains(out, "REFUSED") {
				t.Fatalf("exit %d, want 1 and REFUSED:\n%s", code, out)
			}
			t.Log(strings.TrimSpace(out))
		})
	}

	restored := filepath.Join(t.TempDir(), "restored")
	code, out = cli(t, restoreArgs(bk, restored, "--deletions-from", journal)...)
	if code != 0 || !strings.Contains(out, "OK: restored") || !strings.Contains(out, "1 deletions recorded again") {
		t.Fatalf("restore of a pruned ledger's backup: exit %d\n%s", code, out)
	}
	t.Log(strings.TrimSpace(out))
	if code, out := cli(t, "audit", "verify", "--data-dir", restored); code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("audit verify on the restored data directory: exit %d\n%s", code, out)
	}
	if got, want := exportedBase(t, restored), exportedBase(t, dataDir); !want.Equal(got) || got.Empty() {
		t.Fatalf("the restored ledger starts at %+v, the original at %+v", got, want)
	}

	for _, name := range []string{"root.key", "checkpoint.key", "checkpoint.key.pub"} {
		copyFile(t, filepath.Join(dataDir, name), filepath.Join(restored, name))
	}
	port2 := freePort(t)
	srv2 := serveWithArgs(t, restored, port2, "--unsafe-clock-offset-file", clockFile)
	defer stop(t, srv2)
	rc := newClient("http://127.0.0.1:"+strconv.Itoa(port2), admin[0], admin[1])
	for _, s := range blobs {
		d, err := rc.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: s.blob})
		if err != nil || !bytes.Equal(d.Plaintext, s.plain) {
			t.Errorf("%q does not decrypt on the restored server: %v", s.plain, err)
		}
	}
	if _, err := rc.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: doomed.blob}); err == nil {
		t.Error("the key deleted after the backup decrypts on the restored server")
	}
	for _, alias := range []string{"before-the-base", "after-the-base", "after-the-prune"} {
		if _, err := rc.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/" + alias)}); err != nil {
			t.Errorf("alias/%s on the restored server: %v", alias, err)
		}
	}
}

// exportedBase is where the ledger of a stopped data directory starts, as
// `audit export` writes it.
func exportedBase(t *testing.T, dataDir string) segment.Base {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "export")
	if code, out := cli(t, "audit", "export", "--data-dir", dataDir, "--out", dir); code != 0 {
		t.Fatalf("audit export: exit %d\n%s", code, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, segment.BaseFile))
	if err != nil {
		t.Fatalf("the export has no base: %v", err)
	}
	var b segment.Base
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatal(err)
	}
	return b
}
