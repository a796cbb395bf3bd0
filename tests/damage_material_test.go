package tests

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
)

// sealedKey is a key with a ciphertext made under it.
type sealedKey struct {
	id, material string
	blob         []byte
}

// TestDamagedKeyMaterialSurvives damages the stored key material of a real
// data directory and checks it is survived, not only detected:
//
//   - 16 bytes flipped in the material bucket's block and 8 in the slot
//     file: every one of 2,500 Decrypts succeeds, from the second copies,
//     and the damaged parts are rewritten (audit verify then finds both
//     copies whole);
//   - both copies of one key's per-material key damaged: audit verify
//     fails naming the key, serve alarms naming it and is not ready, its
//     Decrypt answers an error saying the material cannot be read and was
//     not deleted, the other keys work, and backup names the damage
//     instead of a deletion;
//   - `keyledger material restore` puts it back from a backup, checked
//     against the ledger's commitment (a backup holding other bytes is
//     refused), and everything works again.
func TestDamagedKeyMaterialSurvives(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	endpoint := "http://127.0.0.1:" + strconv.Itoa(port)
	admin := testCredentials["admin"]
	c := newClient(endpoint, admin[0], admin[1])
	ctx := context.Background()

	cmd, logs := serveArgs(t, dir, port)
	var keys []sealedKey
	for range 3 {
		created, err := c.CreateKey(ctx, &kms.CreateKeyInput{})
		if err != nil {
			t.Fatal(err)
		}
		enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: created.KeyMetadata.KeyId, Plaintext: []byte("keep me")})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, sealedKey{id: *created.KeyMetadata.KeyId, material: *created.KeyMetadata.CurrentKeyMaterialId, blob: enc.CiphertextBlob})
	}
	stopServe(t, cmd, logs)
	bk := filepath.Join(t.TempDir(), "backup")
	signingKey := filepath.Join(t.TempDir(), "backup.key")
	if code, out := cli(t, "backup", "--data-dir", dir, "--signing-key", signingKey, "--out", bk); code != 0 {
		t.Fatalf("backup: %s", out)
	}

	// One copy of everything damaged.
	kvBlock := filepath.Join(dir, "jetstream", "jetstream", "$G", "streams", "KV_keyledger-material", "msgs", "1.blk")
	flipMiddle(t, kvBlock, 16)
	flipMiddle(t, filepath.Join(dir, "shred", "material-keys.slots"), 8)
	cmd, logs = serveArgs(t, dir, port)
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 2500; i += 8 {
				k := keys[i%len(keys)]
				out, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: k.blob})
				if err != nil || string(out.Plaintext) != "keep me" {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d of 2500 Decrypts failed with one copy damaged (first: %v):\n%s", failed.Load(), firstErr.Load(), logs)
	}
	if status, _ := probe(t, endpoint+"/readyz"); status != 200 {
		t.Fatalf("/readyz = %d with every material readable:\n%s", status, logs)
	}
	if !strings.Contains(logs.String(), "key material repaired from its other stored copy") {
		t.Fatalf("the repair was not logged:\n%s", logs)
	}
	cmd.Process.Signal(syscall.SIGKILL) // the repairs must be durable, not left to a clean stop
	cmd.Wait()
	code, out := cli(t, "audit", "verify", "--data-dir", dir)
	if code != 0 || strings.Contains(out, "WARNING") || !strings.Contains(out, "3 live material(s) readable") {
		t.Fatalf("audit verify after the repair: exit %d:\n%s", code, out)
	}
	t.Logf("one copy damaged: %d of 2500 Decrypts succeeded", ok.Load())

	// Both copies of key 0's per-material key damaged: lost here.
	lost := keys[0]
	for _, name := range []string{"material-keys.slots", "material-keys.copy.slots"} {
		flipSlotKey(t, filepath.Join(dir, "shred", name), lost.material)
	}
	code, out = cli(t, "audit", "verify", "--data-dir", dir)
	if code != 1 || !strings.Contains(out, "FAILED: key "+lost.id) || !strings.Contains(out, "not deleted") {
		t.Fatalf("audit verify with a material lost: exit %d:\n%s", code, out)
	}
	code, out = cli(t, "backup", "--data-dir", dir, "--signing-key", signingKey, "--out", filepath.Join(t.TempDir(), "b2"))
	if code == 0 || !strings.Contains(out, "unreadable") || strings.Contains(out, "deletion") {
		t.Fatalf("backup with a material lost: exit %d:\n%s", code, out)
	}
	cmd, logs = serveArgs(t, dir, port)
	if status, _ := probe(t, endpoint+"/readyz"); status != 503 {
		t.Fatalf("/readyz = %d with a key's material unreadable", status)
	}
	if l := logs.String(); !strings.Contains(l, "ALARM: key material of 1 key(s) is unreadable") || !strings.Contains(l, lost.id) {
		t.Fatalf("no ALARM naming the key:\n%s", l)
	}
	_, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: lost.blob})
	if msg := wantCode(t, err, "KMSInternalException"); !strings.Contains(msg, "cannot be read") || !strings.Contains(msg, "not deleted") {
		t.Fatalf("Decrypt of the lost key: %q", msg)
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && strings.Contains(apiErr.ErrorMessage(), lost.material) {
		t.Fatal("the error names internals")
	}
	// The log names the cause, for the operator.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if l := logs.String(); strings.Contains(l, `msg="internal error" op=Decrypt key=`+lost.id) && strings.Contains(l, "slot fails its checksum") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the failed Decrypt's cause is not logged:\n%s", logs)
		}
	}
	for _, k := range keys[1:] {
		if _, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: k.blob}); err != nil {
			t.Fatalf("another key: %v", err)
		}
	}
	stopServe(t, cmd, logs)

	// A backup holding other bytes for it is refused: the ledger's
	// commitment decides.
	forged := filepath.Join(t.TempDir(), "forged")
	copyTree(t, bk, forged)
	mats, _ := os.ReadFile(filepath.Join(forged, "materials.jsonl"))
	at := bytes.Index(mats, []byte(lost.material))
	i := bytes.Index(mats[at:], []byte(`"wrapped":"`)) + at + len(`"wrapped":"`) + 10
	// Another base64 letter, so other bytes (flipping a bit could leave
	// the alphabet: 'z' becomes '{', and the restore fails to parse).
	if mats[i] == 'A' {
		mats[i] = 'B'
	} else {
		mats[i] = 'A'
	}
	os.WriteFile(filepath.Join(forged, "materials.jsonl"), mats, 0o600)
	code, out = cli(t, "material", "restore", "--data-dir", dir, "--from", forged, "--key", lost.id)
	if code == 0 || !strings.Contains(out, "other bytes than the ledger commits to") {
		t.Fatalf("restore from a forged backup: exit %d:\n%s", code, out)
	}

	code, out = cli(t, "material", "restore", "--data-dir", dir, "--from", bk, "--key", lost.id)
	if code != 0 || !strings.Contains(out, "restored") {
		t.Fatalf("material restore: exit %d:\n%s", code, out)
	}
	cmd, logs = serveArgs(t, dir, port)
	if status, _ := probe(t, endpoint+"/readyz"); status != 200 {
		t.Fatalf("/readyz = %d after the restore:\n%s", status, logs)
	}
	for _, k := range keys {
		if out, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: k.blob}); err != nil || string(out.Plaintext) != "keep me" {
			t.Fatalf("Decrypt after the restore: %v", err)
		}
	}
	stopServe(t, cmd, logs)
	if code, out := cli(t, "audit", "verify", "--data-dir", dir); code != 0 || strings.Contains(out, "WARNING") {
		t.Fatalf("audit verify after the restore: exit %d:\n%s", code, out)
	}
}

// stopServe stops serve cleanly.
func stopServe(t *testing.T, cmd *exec.Cmd, logs *syncBuffer) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve did not stop cleanly: %v\n%s", err, logs)
	}
}

// flipMiddle flips n bytes in the middle of a file.
func flipMiddle(t *testing.T, path string, n int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(data)/2 - n/2; i < len(data)/2-n/2+n; i++ {
		data[i] ^= 0xff
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// flipSlotKey flips 8 bytes of a material's per-material key in a slot
// file.
func flipSlotKey(t *testing.T, path, materialID string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off+testSlotSize <= len(data); off += testSlotSize {
		s := data[off : off+testSlotSize]
		if bytes.HasPrefix(s, []byte("KLS1")) && string(s[5:5+len(materialID)]) == materialID {
			for i := testSlotKeyAt; i < testSlotKeyAt+8; i++ {
				s[i] ^= 0xff
			}
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no slot for material %s in %s", materialID, path)
}
