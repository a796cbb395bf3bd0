package tests

import (
	"bytes"
	"context"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/keyledger/keyledger/crypto/ciphertext"
	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/crypto/secret"
	"github.com/keyledger/keyledger/crypto/shred"
)

// shredKills is how many times TestDeletionSurvivesKill9 kills the server.
const shredKills = 22

// doomedKey is a key the crash loop deletes, with what an attacker would
// need to read its old ciphertext.
type doomedKey struct {
	keyID, materialID string
	plaintext, blob   []byte // a ciphertext made before the deletion
	shredKey          []byte // its per-material key, read from the slot file while it lived
	deletedAtKill     int    // the kill after which the ledger first said deleted
}

// TestDeletionSurvivesKill9 kills a real `keyledger serve` with SIGKILL
// again and again while scheduled deletions fall due (on the injected
// clock), and after every kill checks the data directory as the crash left
// it, before any restart could sweep it: for every key the ledger says is
// deleted, no file holds its per-material key — neither slot file: each
// key is kept twice while it lives — and root.key plus anything found in
// the files (both buckets' blocks included) does not decrypt its old
// ciphertext. The restarted
// server answers NotFoundException for that ciphertext.
func TestDeletionSurvivesKill9(t *testing.T) {
	t.Parallel() // its own servers and directories: runs beside the others
	dataDir := t.TempDir()
	port := freePort(t)
	endpoint := "http://127.0.0.1:" + strconv.Itoa(port)
	clockFile := filepath.Join(t.TempDir(), "clock-offset")
	setClock := func(d time.Duration) {
		tmp := clockFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(d.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, clockFile); err != nil {
			t.Fatal(err)
		}
	}
	admin := testCredentials["admin"]
	c := newClient(endpoint, admin[0], admin[1])
	ctx := context.Background()
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 9))
	t.Logf("kill timing seed %d", seed)

	var keys []*doomedKey
	var deletedBefore, pendingAt, midway int
	// The clock is at +0 whenever the server (re)starts, so nothing falls
	// due until the test moves it: what the restarted server reports as
	// deleted is what the ledger held at the kill.
	setClock(0)
	cmd := serveWithClock(t, dataDir, port, clockFile)
	root, err := rootkey.Load(filepath.Join(dataDir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	for kill := 1; kill <= shredKills; kill++ {
		var round []*doomedKey
		for range 4 {
			k := newDoomedKey(t, c, dataDir)
			round = append(round, k)
			// The scan must be able to fail: while the key lives, the same
			// offline attack does decrypt.
			if !offlineDecrypts(readTree(t, dataDir), root, k) {
				t.Fatalf("the offline attack cannot decrypt a live key's ciphertext: the scan would prove nothing")
			}
			keys = append(keys, k)
		}
		setClock(8 * 24 * time.Hour) // every scheduled deletion is now due
		if kill%2 == 1 {
			// Anywhere around the scheduler's next run (every second).
			time.Sleep(time.Duration(rng.Int64N(int64(1200 * time.Millisecond))))
		} else {
			// In the middle of the deletions: the round's keys are deleted
			// one after another; kill soon after the first is gone.
			waitForFirstDeletion(t, c, round)
			time.Sleep(time.Duration(rng.Int64N(int64(15 * time.Millisecond))))
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		crashed := readTree(t, dataDir) // as the kill left it

		setClock(0)
		cmd = serveWithClock(t, dataDir, port, clockFile)
		deletedNow := 0
		for _, k := range keys {
			if k.deletedAtKill != 0 {
				continue
			}
			_, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &k.keyID})
			if err == nil {
				pendingAt++
				continue
			}
			wantCode(t, err, "NotFoundException")
			k.deletedAtKill = kill
			deletedBefore++
			deletedNow++
			if where := find(crashed, k.shredKey); where != "" {
				t.Fatalf("kill %d: key %s is deleted in the ledger but its per-material key survived in %s", kill, k.keyID, where)
			}
			if offlineDecrypts(crashed, root, k) {
				t.Fatalf("kill %d: the old ciphertext of deleted key %s decrypts offline with root.key and the data directory", kill, k.keyID)
			}
		}
		if deletedNow > 0 && deletedNow < len(round) {
			midway++
		}
	}
	// The last keys fall due on the restarted server.
	setClock(8 * 24 * time.Hour)
	for _, k := range keys {
		deadline := time.Now().Add(10 * time.Second)
		for k.deletedAtKill == 0 {
			if _, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &k.keyID}); err != nil {
				wantCode(t, err, "NotFoundException")
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("key %s was never deleted", k.keyID)
			}
			time.Sleep(50 * time.Millisecond)
		}
		_, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: k.blob})
		wantCode(t, err, "NotFoundException")
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	final := readTree(t, dataDir)
	remnants := 0
	for _, k := range keys {
		if where := find(final, k.shredKey); where != "" {
			t.Fatalf("deleted key %s: its per-material key is still in %s", k.keyID, where)
		}
		if offlineDecrypts(final, root, k) {
			t.Fatalf("deleted key %s: its old ciphertext decrypts offline", k.keyID)
		}
	}
	copies := 0
	for path, data := range final {
		remnants += bytes.Count(data, []byte(shred.Prefix))
		if strings.Contains(path, "KV_keyledger-material-copy") {
			copies += bytes.Count(data, []byte(shred.Prefix))
		}
	}
	t.Logf("%d sealed blobs in the second copy's bucket files", copies)
	// Crashes are not damage: no block was ever taken for damaged.
	if q, _ := filepath.Glob(filepath.Join(dataDir, "quarantine", "*", "*")); len(q) > 0 {
		t.Fatalf("kill -9 alone had blocks moved aside as damaged: %v", q)
	}
	t.Logf("%d kills, %d keys: %d seen deleted in the ledger right after a kill, %d times a key was still pending at a kill, "+
		"%d kills in the middle of a round's deletions; %d sealed material blobs remain in the data directory (the bucket's own files), none opens",
		shredKills, len(keys), deletedBefore, pendingAt, midway, remnants)
	if deletedBefore == 0 || pendingAt == 0 {
		t.Fatalf("the kills never fell on both sides of a deletion (%d deleted, %d pending at a kill)", deletedBefore, pendingAt)
	}
}

// waitForFirstDeletion polls until one of keys is deleted.
func waitForFirstDeletion(t *testing.T, c *kms.Client, keys []*doomedKey) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		for _, k := range keys {
			if _, err := c.DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: &k.keyID}); err != nil {
				return
			}
		}
	}
	t.Fatal("no key was deleted within 5 s of falling due")
}

// serveWithClock starts `keyledger serve` on dataDir with the service clock
// moved by clockFile, and waits until it answers.
func serveWithClock(t *testing.T, dataDir string, port int, clockFile string) *exec.Cmd {
	t.Helper()
	principalsFile := filepath.Join(dataDir, "test-principals.json")
	if err := os.WriteFile(principalsFile, []byte(testPrincipals), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "serve", "--listen", "127.0.0.1:"+strconv.Itoa(port), "--principals", principalsFile,
		"--data-dir", dataDir, "--unsafe-clock-offset-file", clockFile, "--log-level", "error")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	admin := testCredentials["admin"]
	c := newClient("http://127.0.0.1:"+strconv.Itoa(port), admin[0], admin[1])
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := c.ListKeys(context.Background(), &kms.ListKeysInput{}); err == nil {
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("keyledger serve did not come up:\n%s", stderr.String())
		}
	}
}

// newDoomedKey creates a key, encrypts under it, schedules its deletion
// (7 days) and reads its per-material key from the slot file.
func newDoomedKey(t *testing.T, c *kms.Client, dataDir string) *doomedKey {
	t.Helper()
	ctx := context.Background()
	created, err := c.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("doomed")})
	if err != nil {
		t.Fatal(err)
	}
	k := &doomedKey{keyID: *created.KeyMetadata.KeyId, materialID: *created.KeyMetadata.CurrentKeyMaterialId,
		plaintext: []byte("secret of " + *created.KeyMetadata.KeyId)}
	enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: &k.keyID, Plaintext: k.plaintext})
	if err != nil {
		t.Fatal(err)
	}
	k.blob = enc.CiphertextBlob
	if _, err := c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &k.keyID, PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	slots, err := os.ReadFile(filepath.Join(dataDir, "shred", "material-keys.slots"))
	if err != nil {
		t.Fatal(err)
	}
	if k.shredKey = slotKeyOf(slots, k.materialID); k.shredKey == nil {
		t.Fatalf("no slot for material %s", k.materialID)
	}
	// The second copy holds the same key while the key lives: the scans
	// after each kill must find it gone from there too.
	copySlots, err := os.ReadFile(filepath.Join(dataDir, "shred", "material-keys.copy.slots"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(slotKeyOf(copySlots, k.materialID), k.shredKey) {
		t.Fatalf("the second slot file does not hold material %s's key", k.materialID)
	}
	return k
}

// Slot layout (ledger/material/slots.go): 128-byte slots, "KLS1", id
// length, the id zero-padded to 80 bytes, then the 32-byte key.
const (
	testSlotSize  = 128
	testSlotKeyAt = 85
)

func slotKeyOf(slots []byte, materialID string) []byte {
	for off := 0; off+testSlotSize <= len(slots); off += testSlotSize {
		s := slots[off : off+testSlotSize]
		if bytes.HasPrefix(s, []byte("KLS1")) && int(s[4]) == len(materialID) && string(s[5:5+len(materialID)]) == materialID {
			return bytes.Clone(s[testSlotKeyAt : testSlotKeyAt+shred.KeySize])
		}
	}
	return nil
}

// readTree reads every file under dir.
func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files[path] = data
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("only %d files under %s", len(files), dir)
	}
	return files
}

// find names a file holding needle, or "".
func find(files map[string][]byte, needle []byte) string {
	for path, data := range files {
		if bytes.Contains(data, needle) {
			return path
		}
	}
	return ""
}

// offlineDecrypts is the attack: with root.key and the files, try every
// sealed blob in any file under every candidate per-material key — the
// recorded key wherever it still appears, and the 32 bytes where the slot
// layout puts a key after every occurrence of the material id in any file —
// and report whether one yields material that opens the old ciphertext.
func offlineDecrypts(files map[string][]byte, root rootkey.Key, k *doomedKey) bool {
	var keys [][]byte
	if find(files, k.shredKey) != "" {
		keys = append(keys, k.shredKey)
	}
	id := []byte(k.materialID)
	var blobs [][]byte
	for _, data := range files {
		for off := 0; ; {
			i := bytes.Index(data[off:], id)
			if i < 0 {
				break
			}
			at := off + i + (testSlotKeyAt - 5)
			if at+shred.KeySize <= len(data) {
				keys = append(keys, data[at:at+shred.KeySize])
			}
			off += i + 1
		}
		// A symmetric key's stored blob: prefix, salt, nonce, then the
		// root wrap of 32 bytes (salt, nonce, ciphertext, tag), then a tag.
		const sealedLen = len(shred.Prefix) + 16 + 12 + (16 + 12 + 32 + 16) + 16
		for off := 0; ; {
			i := bytes.Index(data[off:], []byte(shred.Prefix))
			if i < 0 {
				break
			}
			if start := off + i; start+sealedLen <= len(data) {
				blobs = append(blobs, data[start:start+sealedLen])
			}
			off += i + 1
		}
	}
	for _, blob := range blobs {
		for _, key := range keys {
			if tryOpen(root, k, blob, key) {
				return true
			}
		}
	}
	return false
}

func tryOpen(root rootkey.Key, k *doomedKey, blob, key []byte) bool {
	wrapped, err := shred.Open(secret.New(key), k.materialID, blob)
	if err != nil {
		return false
	}
	mat, err := root.Unwrap(wrapped, k.materialID)
	if err != nil {
		return false
	}
	pt, err := ciphertext.Open(k.blob, mat, nil)
	return err == nil && bytes.Equal(pt, k.plaintext)
}

// TestStartupReclaimsUncommittedMaterial: material stored but never
// committed to by the ledger (a crash between the two) is destroyed at the
// next start, before serving; committed material is kept.
func TestStartupReclaimsUncommittedMaterial(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	k := in.createKey("kept")
	enc, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("kept")})
	if err != nil {
		t.Fatal(err)
	}
	orphan := strings.Repeat("0f", 32)
	if err := in.node.Materials.Put(ctx, orphan, in.root.Wrap(secret.Random(32), orphan)); err != nil {
		t.Fatal(err)
	}
	slots := filepath.Join(in.dir, "shred", "material-keys.slots")
	data, _ := os.ReadFile(slots)
	if slotKeyOf(data, orphan) == nil {
		t.Fatal("the orphan has no slot")
	}
	in.restart()
	if ok, err := in.node.Materials.Exists(ctx, orphan); err != nil || ok {
		t.Fatalf("the uncommitted material survived the restart (exists=%v, %v)", ok, err)
	}
	data, _ = os.ReadFile(slots)
	if bytes.Contains(data, []byte(orphan)) {
		t.Fatal("the uncommitted material's slot was not zeroed")
	}
	if !strings.Contains(in.logs.String(), orphan) {
		t.Fatal("the reclaim was not logged")
	}
	if dec, err := in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob}); err != nil || string(dec.Plaintext) != "kept" {
		t.Fatalf("committed material after the reclaim: %v", err)
	}
}
