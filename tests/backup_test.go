package tests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
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
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/ledger/backup"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/offline"
)

// backupFixture is a deployment that was backed up, then lost a key to a
// deletion that fell due after the backup, then was destroyed.
type backupFixture struct {
	backupDir, journalDir, escrow string
	signingKey, backupPub         string // the backup signing key, kept apart; its .pub in escrow
	laterBackupDir                string // a backup taken after the deletion
	keepID                        string
	keepPlain, keepBlob           []byte
	doomed                        *doomedKey
}

// newBackupFixture runs a real `keyledger serve`: creates a key to keep and
// one scheduled for deletion, encrypts under both, stops, takes `keyledger
// backup`, restarts with the clock past the deletion date until the key is
// deleted, stops, exports the surviving ledger (the deletion journal) and
// wipes the data directory. root.key, checkpoint.key(.pub) are escrowed
// first, as the README asks.
func newBackupFixture(t *testing.T) *backupFixture {
	t.Helper()
	dataDir := t.TempDir()
	port := freePort(t)
	clockFile := filepath.Join(t.TempDir(), "clock-offset")
	setClock := func(d time.Duration) {
		if err := os.WriteFile(clockFile+".tmp", []byte(d.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(clockFile+".tmp", clockFile); err != nil {
			t.Fatal(err)
		}
	}
	setClock(0)
	srv := serveWithClock(t, dataDir, port, clockFile)
	admin := testCredentials["admin"]
	c := newClient("http://127.0.0.1:"+strconv.Itoa(port), admin[0], admin[1])
	ctx := context.Background()
	f := &backupFixture{backupDir: filepath.Join(t.TempDir(), "backup"), journalDir: filepath.Join(t.TempDir(), "journal"),
		escrow: t.TempDir(), keepPlain: []byte("kept across the disaster")}
	created, err := c.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("kept")})
	if err != nil {
		t.Fatal(err)
	}
	f.keepID = *created.KeyMetadata.KeyId
	enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: &f.keepID, Plaintext: f.keepPlain})
	if err != nil {
		t.Fatal(err)
	}
	f.keepBlob = enc.CiphertextBlob
	if _, err := c.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: &f.keepID}); err != nil {
		t.Fatal(err)
	}
	f.doomed = newDoomedKey(t, c, dataDir)
	stop(t, srv)

	for _, name := range []string{"root.key", "writer.key", "checkpoint.key", "checkpoint.key.pub", "test-principals.json"} {
		copyFile(t, filepath.Join(dataDir, name), filepath.Join(f.escrow, name))
	}
	f.signingKey = filepath.Join(t.TempDir(), "backup.key")
	if code, out := cli(t, "backup", "--data-dir", dataDir, "--signing-key", f.signingKey, "--out", f.backupDir); code != 0 || !strings.Contains(out, "OK: backed up") {
		t.Fatalf("backup: exit %d\n%s", code, out)
	}
	f.backupPub = filepath.Join(f.escrow, "backup.key.pub")
	copyFile(t, f.signingKey+".pub", f.backupPub)

	srv = serveWithClock(t, dataDir, port, clockFile)
	setClock(8 * 24 * time.Hour)
	waitForFirstDeletion(t, c, []*doomedKey{f.doomed})
	stop(t, srv)
	f.laterBackupDir = filepath.Join(t.TempDir(), "later")
	if code, out := cli(t, "backup", "--data-dir", dataDir, "--signing-key", f.signingKey, "--out", f.laterBackupDir); code != 0 {
		t.Fatalf("the later backup: exit %d\n%s", code, out)
	}
	if code, out := cli(t, "audit", "export", "--data-dir", dataDir, "--out", f.journalDir); code != 0 {
		t.Fatalf("audit export: exit %d\n%s", code, out)
	}
	if err := os.RemoveAll(dataDir); err != nil { // the disaster
		t.Fatal(err)
	}
	return f
}

// TestBackupRestore: backup → wipe → restore → the old ciphertext decrypts
// and `audit verify` passes; a key deleted after the backup stays deleted
// (with the surviving ledger as deletion journal), and comes back without
// one — which shows the check can fail.
func TestBackupRestore(t *testing.T) {
	f := newBackupFixture(t)
	root, err := rootkey.Load(filepath.Join(f.escrow, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(f.escrow, "checkpoint.key.pub")
	wk := filepath.Join(f.escrow, "writer.key")

	t.Run("without the writer key the ledger cannot be signed", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "restored")
		code, out := cli(t, "restore", "--from", f.backupDir, "--data-dir", dir, "--pubkey", pub, "--backup-pubkey", f.backupPub, "--allow-rollback")
		if code != 1 || !strings.Contains(out, "--writer-key") {
			t.Fatalf("restore without --writer-key: exit %d, want 1 naming --writer-key\n%s", code, out)
		}
		for _, left := range []string{dir, dir + ".restoring"} {
			if _, err := os.Stat(left); err == nil {
				t.Errorf("a failed restore left %s", left)
			}
		}
	})

	t.Run("deleted after the backup stays deleted", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "restored")
		code, out := cli(t, "restore", "--from", f.backupDir, "--data-dir", dir, "--pubkey", pub, "--writer-key", wk,
			"--backup-pubkey", f.backupPub, "--allow-rollback",
			"--deletions-from", f.journalDir, "--root-key-file", filepath.Join(f.escrow, "root.key"))
		if code != 0 || !strings.Contains(out, "OK: restored") || !strings.Contains(out, "1 materials deleted since are not restored") {
			t.Fatalf("restore: exit %d\n%s", code, out)
		}
		t.Log(out)
		if code, out := cli(t, "audit", "verify", "--data-dir", dir); code != 0 || !strings.Contains(out, "OK:") {
			t.Fatalf("audit verify after restore: exit %d\n%s", code, out)
		}
		files := readTree(t, dir)
		if p := find(files, f.doomed.shredKey); p != "" {
			t.Errorf("the deleted key's per-material key is in %s", p)
		}
		if offlineDecrypts(files, root, f.doomed) {
			t.Error("the deleted key's ciphertext decrypts offline from the restored files and root.key")
		}

		for _, name := range []string{"root.key", "checkpoint.key", "checkpoint.key.pub"} {
			copyFile(t, filepath.Join(f.escrow, name), filepath.Join(dir, name))
		}
		// serve writes test-principals.json into the data directory itself.
		port := freePort(t)
		clockFile := filepath.Join(t.TempDir(), "clock")
		os.WriteFile(clockFile, []byte((8 * 24 * time.Hour).String()), 0o600)
		srv := serveWithClock(t, dir, port, clockFile)
		defer stop(t, srv)
		admin := testCredentials["admin"]
		c := newClient("http://127.0.0.1:"+strconv.Itoa(port), admin[0], admin[1])
		ctx := context.Background()
		dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: f.keepBlob})
		if err != nil || !bytes.Equal(dec.Plaintext, f.keepPlain) {
			t.Fatalf("old ciphertext after restore: %v", err)
		}
		if _, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: f.doomed.blob}); err == nil {
			t.Fatal("the key deleted after the backup decrypts after the restore")
		}
		if _, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &f.doomed.keyID}); err == nil {
			t.Error("the key deleted after the backup is described after the restore")
		}
	})

	t.Run("without a journal the restore is the backup as it was", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "restored")
		if code, out := cli(t, "restore", "--from", f.backupDir, "--data-dir", dir, "--pubkey", pub, "--writer-key", wk,
			"--backup-pubkey", f.backupPub, "--allow-rollback"); code != 0 {
			t.Fatalf("restore: exit %d\n%s", code, out)
		}
		if !offlineDecrypts(readTree(t, dir), root, f.doomed) {
			t.Error("a restore without a deletion journal should bring back the material as it was at the backup")
		}
	})
}

// TestRestoreRefusesTamperedBackup changes a backup in the ways an attacker
// or a bad disk would, each on a fresh copy, and requires restore to refuse
// with a message naming what failed and to leave no data directory.
func TestRestoreRefusesTamperedBackup(t *testing.T) {
	f := newBackupFixture(t)
	pub := filepath.Join(f.escrow, "checkpoint.key.pub")
	wk := filepath.Join(f.escrow, "writer.key")
	// Every case but the last few is re-signed with the real backup signing
	// key after the change: the checks behind the manifest's signature must
	// hold on their own against whoever holds that key.
	cases := []struct {
		name     string
		tamper   func(t *testing.T, dir string)
		want     string
		unsigned bool // leave the manifest's signature as the change left it
	}{
		{"a byte of ledger data", func(t *testing.T, dir string) {
			flipAfter(t, filepath.Join(dir, "ledger", "events.jsonl"), `"op":"Enc`)
		}, "ledger/events.jsonl: its SHA-256 does not match the manifest", false},
		{"a byte of ledger data, manifest digests redone", func(t *testing.T, dir string) {
			flipAfter(t, filepath.Join(dir, "ledger", "events.jsonl"), `"op":"Enc`)
			redoManifest(t, dir)
		}, "ledger:", false},
		{"a byte of material", func(t *testing.T, dir string) {
			flipAfter(t, filepath.Join(dir, "materials.jsonl"), `"wrapped":"`)
		}, "materials.jsonl: its SHA-256 does not match the manifest", false},
		{"a byte of material, manifest digests redone", func(t *testing.T, dir string) {
			flipAfter(t, filepath.Join(dir, "materials.jsonl"), `"wrapped":"`)
			redoManifest(t, dir)
		}, "does not match the ledger's commitment", false},
		{"a material removed, manifest digests redone", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "materials.jsonl")
			data, _ := os.ReadFile(p)
			lines := strings.SplitAfter(string(data), "\n")
			os.WriteFile(p, []byte(strings.Join(lines[1:], "")), 0o600)
			redoManifest(t, dir)
		}, "is missing", false},
		{"a byte of the manifest", func(t *testing.T, dir string) {
			flipAfter(t, filepath.Join(dir, "manifest.json"), `"sha256": "`)
		}, "SHA-256 does not match the manifest", false},
		{"the manifest's cut", func(t *testing.T, dir string) {
			editManifest(t, dir, func(m *backup.Manifest) { m.Events-- })
		}, "manifest: its cut", false},
		{"a forged checkpoint", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "ledger", "checkpoint")
			signed, _ := os.ReadFile(p)
			text, _, _ := strings.Cut(string(signed), "\n\n")
			cp, err := merkle.ParseBody(text + "\n")
			if err != nil {
				t.Fatal(err)
			}
			skey, _, err := note.GenerateKey(nil, cp.Origin)
			if err != nil {
				t.Fatal(err)
			}
			signer, _ := note.NewSigner(skey)
			forged, err := merkle.Sign(cp, signer)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(p, forged, 0o600)
			redoManifest(t, dir)
		}, "not signed by the verifier key", false},
		{"a byte of the stored checkpoints", func(t *testing.T, dir string) {
			flipAfter(t, filepath.Join(dir, "checkpoints.json"), `["`)
		}, "checkpoints.json: its SHA-256 does not match the manifest", false},
		{"a stored checkpoint with a wrong root, signed with the real key, stored out of order", func(t *testing.T, dir string) {
			addStoredCheckpoint(t, dir, f.escrow, merkle.Checkpoint{Size: 1})
		}, "does not match the ledger's Merkle root", false},
		{"an extra file", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "extra"), []byte("x"), 0o600)
		}, "extra: a file the manifest does not list", false},
		{"a writer signature", func(t *testing.T, dir string) {
			flipAfter(t, filepath.Join(dir, "ledger", "signatures.jsonl"), `"signature":"`)
			redoManifest(t, dir)
		}, "not one a registered writer signed", false},
		{"the manifest's digests redone, not signed again", func(t *testing.T, dir string) {
			flipAfter(t, filepath.Join(dir, "ledger", "events.jsonl"), `"op":"Enc`)
			redoManifest(t, dir)
		}, "manifest.sig: the manifest is not signed by the backup signing key", true},
		{"the manifest's created date moved, not signed again", func(t *testing.T, dir string) {
			editManifest(t, dir, func(m *backup.Manifest) { m.Created = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) })
		}, "manifest.sig: the manifest is not signed by the backup signing key", true},
		{"the manifest's signature removed", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "manifest.sig"))
		}, "manifest.sig: the manifest is not signed by the backup signing key", true},
		{"the manifest signed with another key", func(t *testing.T, dir string) {
			signManifestFile(t, dir, filepath.Join(t.TempDir(), "other.key"))
		}, "manifest.sig: the manifest is not signed by the backup signing key", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "copy")
			copyTree(t, f.backupDir, dir)
			tc.tamper(t, dir)
			if !tc.unsigned {
				signManifestFile(t, dir, f.signingKey)
			}
			target := filepath.Join(t.TempDir(), "restored")
			code, out := cli(t, "restore", "--from", dir, "--data-dir", target, "--pubkey", pub, "--writer-key", wk,
				"--backup-pubkey", f.backupPub, "--allow-rollback")
			if code != 1 || !strings.Contains(out, "REFUSED") || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, want 1 and REFUSED naming %q:\n%s", code, tc.want, out)
			}
			if _, err := os.Stat(target); err == nil {
				t.Errorf("a refused restore left %s", target)
			}
			t.Log(strings.TrimSpace(out))
		})
	}
	t.Run("a genuine checkpoint stored out of order restores", func(t *testing.T) {
		// Instances sharing a stream store checkpoints as they sign them,
		// so a smaller tree can follow a larger one.
		dir := filepath.Join(t.TempDir(), "copy")
		copyTree(t, f.backupDir, dir)
		events, err := os.ReadFile(filepath.Join(dir, "ledger", "events.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		first, _, _ := bytes.Cut(events, []byte("\n"))
		addStoredCheckpoint(t, dir, f.escrow, merkle.Checkpoint{Size: 1, Root: tlog.RecordHash(first)})
		signManifestFile(t, dir, f.signingKey)
		if code, out := cli(t, "restore", "--from", dir, "--data-dir", filepath.Join(t.TempDir(), "r"), "--pubkey", pub, "--writer-key", wk,
			"--backup-pubkey", f.backupPub, "--allow-rollback"); code != 0 {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})
	t.Run("the untouched copy restores", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "copy")
		copyTree(t, f.backupDir, dir)
		if code, out := cli(t, "restore", "--from", dir, "--data-dir", filepath.Join(t.TempDir(), "r"), "--pubkey", pub, "--writer-key", wk,
			"--backup-pubkey", f.backupPub, "--allow-rollback"); code != 0 {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})
}

// addStoredCheckpoint signs cp (its origin the backup's) with the escrowed
// checkpoint key, appends it to the backup's stored checkpoints and redoes
// the manifest's digests: a change only the checkpoint key can make.
func addStoredCheckpoint(t *testing.T, dir, escrow string, cp merkle.Checkpoint) {
	t.Helper()
	p := filepath.Join(dir, "checkpoints.json")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var stored [][]byte
	if err := json.Unmarshal(data, &stored); err != nil || len(stored) == 0 {
		t.Fatalf("checkpoints.json: %v (%d stored)", err, len(stored))
	}
	vkey, err := os.ReadFile(filepath.Join(escrow, "checkpoint.key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	newest, err := merkle.Open(stored[len(stored)-1], string(vkey))
	if err != nil {
		t.Fatal(err)
	}
	cp.Origin = newest.Origin
	skey, err := os.ReadFile(filepath.Join(escrow, "checkpoint.key"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := merkle.Sign(cp, signer)
	if err != nil {
		t.Fatal(err)
	}
	data, _ = json.Marshal(append(stored, signed))
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	redoManifest(t, dir)
}

// stop ends a serve process with SIGTERM, as an operator would.
func stop(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve after SIGTERM: %v", err)
	}
}

// flipByte changes the byte just after the first occurrence of marker.
func flipAfter(t *testing.T, path, marker string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte(marker))
	if i < 0 {
		t.Fatalf("%q not in %s", marker, path)
	}
	i += len(marker)
	if data[i] == 'A' {
		data[i] = 'B'
	} else {
		data[i] = 'A'
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// redoManifest recomputes every digest in the manifest, as a careful
// attacker would.
func redoManifest(t *testing.T, dir string) {
	t.Helper()
	editManifest(t, dir, func(m *backup.Manifest) {
		for i, f := range m.Files {
			data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Path)))
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(data)
			m.Files[i].Size, m.Files[i].SHA256 = int64(len(data)), hex.EncodeToString(sum[:])
		}
	})
}

// signManifestFile signs the backup's manifest.json with the note key in
// keyFile (created if missing), as the backup command does.
func signManifestFile(t *testing.T, dir, keyFile string) {
	t.Helper()
	signer, _, err := merkle.LoadOrCreateKey(keyFile, "keyledger-backup")
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := os.ReadFile(filepath.Join(dir, backup.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(manifest)
	sig, err := note.Sign(&note.Note{Text: backup.Format + " manifest\nsha256 " + hex.EncodeToString(sum[:]) + "\n"}, signer)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, backup.SignatureFile), sig, 0o600); err != nil {
		t.Fatal(err)
	}
}

func editManifest(t *testing.T, dir string, edit func(*backup.Manifest)) {
	t.Helper()
	p := filepath.Join(dir, backup.ManifestFile)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m backup.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	edit(&m)
	data, _ = json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestBackupRestoreNATS backs up a running deployment on an external NATS
// server through --nats-url while it serves, restores into another, empty
// NATS server, and serves the old ciphertext from there.
func TestBackupRestoreNATS(t *testing.T) {
	portA, portB := freePort(t), freePort(t)
	startNATS(t, t.TempDir(), portA)
	startNATS(t, t.TempDir(), portB)
	urlA, urlB := "nats://127.0.0.1:"+strconv.Itoa(portA), "nats://127.0.0.1:"+strconv.Itoa(portB)
	a := start(t, withNATS(urlA))
	ctx := context.Background()
	key := a.createKey("over NATS")
	enc, err := a.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &key, Plaintext: []byte("hello")})
	if err != nil {
		t.Fatal(err)
	}
	bk := filepath.Join(t.TempDir(), "backup")
	cpKey := filepath.Join(a.dir, "checkpoint.key")
	bkey := filepath.Join(t.TempDir(), "backup.key")
	before := a.clock.Now() // events carry the injected clock's time
	if code, out := cli(t, "backup", "--nats-url", urlA, "--checkpoint-key", cpKey, "--signing-key", bkey, "--out", bk); code != 0 {
		t.Fatalf("backup of a running deployment: exit %d\n%s", code, out)
	}
	wk := filepath.Join(t.TempDir(), "writer.key") // the deployment's writer key, from escrow
	seed := sha256.Sum256([]byte("keyledger test writer " + urlA))
	if err := os.WriteFile(wk, []byte(base64.StdEncoding.EncodeToString(seed[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	notBefore := before.UTC().Format(time.RFC3339)
	code, out := cli(t, "restore", "--from", bk, "--nats-url", urlB, "--pubkey", cpKey+".pub", "--writer-key", wk,
		"--backup-pubkey", bkey+".pub", "--not-before", notBefore)
	if code != 0 || !strings.Contains(out, "OK: restored") {
		t.Fatalf("restore into NATS: exit %d\n%s", code, out)
	}
	if code, out := cli(t, "restore", "--from", bk, "--nats-url", urlB, "--pubkey", cpKey+".pub", "--writer-key", wk,
		"--backup-pubkey", bkey+".pub", "--not-before", notBefore); code == 0 {
		t.Fatalf("a second restore into the same, no longer empty deployment succeeded:\n%s", out)
	}
	if code, out := cli(t, "audit", "verify", "--nats-url", urlB); code != 0 {
		t.Fatalf("audit verify on the restored deployment: exit %d\n%s", code, out)
	}
	b := start(t, withNATS(urlB), withWriter(a.writer), func(i *instance) { i.root, i.dir = a.root, a.dir })
	dec, err := b.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	if err != nil || string(dec.Plaintext) != "hello" {
		t.Fatalf("old ciphertext on the restored deployment: %v", err)
	}
}

// TestRestoreRefusesForgedJournal: the deletion journal is input from
// outside the ledger, so restore takes from it only what a registered
// writer signed and a checkpoint the escrowed verifier key accepts covers
// (DESIGN rule 14). A forged deletion appended to it, a bare events file,
// and a journal whose tail (a real deletion) was cut off are refused, and
// no data directory is left.
func TestRestoreRefusesForgedJournal(t *testing.T) {
	f := newBackupFixture(t)
	pub := filepath.Join(f.escrow, "checkpoint.key.pub")
	wk := filepath.Join(f.escrow, "writer.key")
	keepMaterials := liveMaterialIDs(t, f.backupDir, f.doomed.materialID)
	if len(keepMaterials) == 0 {
		t.Fatal("the backup holds no material of the kept key")
	}
	cases := []struct {
		name   string
		change func(t *testing.T, dir string) string // returns the --deletions-from argument
		want   string
	}{
		{"a forged deletion of a live key, linked by SHA-256, unsigned", func(t *testing.T, dir string) string {
			appendForgedDeletion(t, filepath.Join(dir, "events.jsonl"), f.keepID, keepMaterials)
			return dir
		}, "deletion journal"},
		{"a forged deletion, with a forged signature line", func(t *testing.T, dir string) string {
			appendForgedDeletion(t, filepath.Join(dir, "events.jsonl"), f.keepID, keepMaterials)
			sigs := filepath.Join(dir, "signatures.jsonl")
			data, _ := os.ReadFile(sigs)
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			var last offline.MessageSignature
			json.Unmarshal([]byte(lines[len(lines)-1]), &last)
			forged, _ := json.Marshal(offline.MessageSignature{Seq: last.Seq + 1, Events: 1, Writer: last.Writer,
				Signature: base64.StdEncoding.EncodeToString(make([]byte, 64))})
			os.WriteFile(sigs, append(data, append(forged, '\n')...), 0o600)
			return dir
		}, "deletion journal"},
		{"a bare events.jsonl", func(t *testing.T, dir string) string {
			return filepath.Join(dir, "events.jsonl")
		}, "deletion journal"},
		{"the events file alone, without signatures and checkpoint", func(t *testing.T, dir string) string {
			os.Remove(filepath.Join(dir, "signatures.jsonl"))
			os.Remove(filepath.Join(dir, "checkpoint"))
			return dir
		}, "deletion journal"},
		{"cut short: the real deletion removed, with its signature", func(t *testing.T, dir string) string {
			cutBefore(t, dir, "KeyDeleted.v1")
			return dir
		}, "deletion journal"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "journal")
			copyTree(t, f.journalDir, dir)
			arg := tc.change(t, dir)
			target := filepath.Join(t.TempDir(), "restored")
			code, out := cli(t, "restore", "--from", f.backupDir, "--data-dir", target, "--pubkey", pub, "--writer-key", wk,
				"--backup-pubkey", f.backupPub, "--allow-rollback", "--deletions-from", arg)
			if code != 1 || !strings.Contains(out, "REFUSED") || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, want 1 and REFUSED naming %q:\n%s", code, tc.want, out)
			}
			if _, err := os.Stat(target); err == nil {
				t.Errorf("a refused restore left %s", target)
			}
			t.Log(strings.TrimSpace(out))
		})
	}
}

// liveMaterialIDs lists the material ids a backup holds, except skip.
func liveMaterialIDs(t *testing.T, backupDir, skip string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(backupDir, "materials.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var m struct{ ID string }
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		if m.ID != skip {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

// appendForgedDeletion appends to an events file a DeleteKey event for
// keyID destroying materials, linked to the last event by its SHA-256 as a
// real one would be: what anyone who can write the file can make.
func appendForgedDeletion(t *testing.T, path, keyID string, materials []string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	last := lines[len(lines)-1]
	prev, err := event.Decode(last)
	if err != nil {
		t.Fatal(err)
	}
	ev := &event.Event{Index: prev.Index + 1, Prev: event.Of(last), Time: prev.Time.Add(time.Second), Operation: "DeleteKey",
		Account: prev.Account, Region: prev.Region, KeyID: keyID, Body: &event.KeyDeleted{DestroyedMaterials: materials}}
	data = append(ev.AppendEncoded(data), '\n')
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// cutBefore removes from an export directory the first event whose line
// holds marker and everything after it, with the signature lines of the
// messages they were in: a journal that ends before a real event.
func cutBefore(t *testing.T, dir, marker string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	keep := -1
	for i, l := range lines {
		if strings.Contains(l, marker) {
			keep = i
			break
		}
	}
	if keep < 0 {
		t.Fatalf("no %q in the journal", marker)
	}
	sigData, err := os.ReadFile(filepath.Join(dir, "signatures.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var sigs []string
	n := 0
	for _, l := range strings.SplitAfter(string(sigData), "\n") {
		var ms offline.MessageSignature
		if json.Unmarshal([]byte(l), &ms) != nil {
			continue
		}
		if n+ms.Events > keep {
			break
		}
		n += ms.Events
		sigs = append(sigs, l)
	}
	os.WriteFile(filepath.Join(dir, "events.jsonl"), []byte(strings.Join(lines[:n], "")), 0o600)
	os.WriteFile(filepath.Join(dir, "signatures.jsonl"), []byte(strings.Join(sigs, "")), 0o600)
}

// TestRestoreRefusesRollback: a restore never rolls a deployment back
// unless the operator says so (DESIGN rule 14). An older backup passed off
// as newer — cut to an earlier signed checkpoint, the later checkpoints
// dropped, the manifest recomputed and dated 2030 — is refused for its
// signature; a genuine older backup is refused against --not-before and
// against a witness state, restores with --allow-rollback, and restore
// refuses to guess when given no reference at all. Each time it prints the
// cut's size, last event and time first.
func TestRestoreRefusesRollback(t *testing.T) {
	f := newBackupFixture(t)
	pub := filepath.Join(f.escrow, "checkpoint.key.pub")
	wk := filepath.Join(f.escrow, "writer.key")
	older := readManifest(t, f.backupDir)
	newer := readManifest(t, f.laterBackupDir)
	if older.Events >= newer.Events {
		t.Fatalf("the later backup (%d events) is not newer than the first (%d)", newer.Events, older.Events)
	}
	witnessState := filepath.Join(t.TempDir(), "witness.state")
	copyFile(t, filepath.Join(f.laterBackupDir, "ledger", "checkpoint"), witnessState)
	between := older.Last.Time.Add(time.Second).UTC().Format(time.RFC3339Nano)

	passedOff := filepath.Join(t.TempDir(), "passed-off")
	copyTree(t, f.laterBackupDir, passedOff)
	cutBackupTo(t, passedOff, f.backupDir, older.Events)
	editManifest(t, passedOff, func(m *backup.Manifest) { m.Created = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) })
	passedOffSigned := filepath.Join(t.TempDir(), "passed-off-signed")
	copyTree(t, passedOff, passedOffSigned)
	signManifestFile(t, passedOffSigned, f.signingKey)

	restore := func(t *testing.T, from string, args ...string) (int, string) {
		t.Helper()
		target := filepath.Join(t.TempDir(), "restored")
		code, out := cli(t, append([]string{"restore", "--from", from, "--data-dir", target, "--pubkey", pub, "--writer-key", wk,
			"--backup-pubkey", f.backupPub}, args...)...)
		if _, err := os.Stat(target); (err == nil) != (code == 0) {
			t.Errorf("exit %d, and the data directory exists: %v", code, err == nil)
		}
		t.Log(strings.TrimSpace(out))
		return code, out
	}
	for _, tc := range []struct {
		name string
		from string
		args []string
		want []string // "" for a restore that must succeed
	}{
		{"an older backup passed off as newer, its manifest recomputed and dated 2030", passedOff,
			[]string{"--allow-rollback"}, []string{"REFUSED", "manifest.sig"}},
		// Only the signature stops it: signed with the real key, the same
		// directory restores (so the case above can fail).
		{"the same, signed with the backup signing key, on purpose", passedOffSigned,
			[]string{"--allow-rollback"}, nil},
		{"a genuine older backup, older than --not-before", f.backupDir,
			[]string{"--not-before", between}, []string{"REFUSED", "roll the deployment back", "is older than", "--allow-rollback"}},
		{"a genuine older backup, older than the witness state", f.backupDir,
			[]string{"--witness-state", witnessState}, []string{"REFUSED", "roll the deployment back", "older than the witness state"}},
		{"no reference at all", f.backupDir, nil, []string{"REFUSED", "name the newest state you know of"}},
		{"a genuine older backup, on purpose", f.backupDir,
			[]string{"--witness-state", witnessState, "--allow-rollback"}, nil},
		{"the newer backup against the witness state", f.laterBackupDir, []string{"--witness-state", witnessState}, nil},
		{"the newer backup against --not-before", f.laterBackupDir, []string{"--not-before", between}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := restore(t, tc.from, tc.args...)
			if tc.want == nil {
				if code != 0 || !strings.Contains(out, "OK: restored") {
					t.Fatalf("exit %d, want 0:\n%s", code, out)
				}
			} else {
				if code != 1 {
					t.Fatalf("exit %d, want 1:\n%s", code, out)
				}
				for _, w := range tc.want {
					if !strings.Contains(out, w) {
						t.Errorf("the output does not name %q", w)
					}
				}
			}
			if tc.from == f.backupDir || tc.from == f.laterBackupDir {
				m := readManifest(t, tc.from)
				cut := fmt.Sprintf("cut: %d events", m.Events)
				last := fmt.Sprintf("its last event #%d at %s", m.Last.Index, m.Last.Time.UTC().Format(time.RFC3339))
				if !strings.Contains(out, cut) || !strings.Contains(out, last) {
					t.Errorf("the output does not show the cut (%q, %q)", cut, last)
				}
			}
		})
	}
}

func readManifest(t *testing.T, dir string) backup.Manifest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, backup.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	var m backup.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if m.Last == nil {
		t.Fatal("the manifest names no last event")
	}
	return m
}

// cutBackupTo makes the backup in dir one of its first n events, as
// whoever can read the ledger could: its events and their signatures cut
// there, the stored checkpoint of that size as its cut and none after it,
// the materials live then (those of the backup at materialsFrom, taken at
// that size), and the manifest's digests redone — all but its signature.
func cutBackupTo(t *testing.T, dir, materialsFrom string, n int64) {
	t.Helper()
	events, _ := os.ReadFile(filepath.Join(dir, "ledger", "events.jsonl"))
	lines := strings.SplitAfter(string(events), "\n")
	os.WriteFile(filepath.Join(dir, "ledger", "events.jsonl"), []byte(strings.Join(lines[:n], "")), 0o600)
	sigData, _ := os.ReadFile(filepath.Join(dir, "ledger", "signatures.jsonl"))
	var sigs []string
	covered := int64(0)
	for _, l := range strings.SplitAfter(string(sigData), "\n") {
		var ms offline.MessageSignature
		if json.Unmarshal([]byte(l), &ms) != nil || covered >= n {
			continue
		}
		covered += int64(ms.Events)
		sigs = append(sigs, l)
	}
	if covered != n {
		t.Fatalf("no message ends at event %d", n)
	}
	os.WriteFile(filepath.Join(dir, "ledger", "signatures.jsonl"), []byte(strings.Join(sigs, "")), 0o600)
	var stored [][]byte
	data, _ := os.ReadFile(filepath.Join(dir, "checkpoints.json"))
	if err := json.Unmarshal(data, &stored); err != nil {
		t.Fatal(err)
	}
	var kept [][]byte
	var at []byte
	for _, s := range stored {
		text, _, _ := strings.Cut(string(s), "\n\n")
		cp, err := merkle.ParseBody(text + "\n")
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size <= n {
			kept = append(kept, s)
		}
		if cp.Size == n {
			at = s
		}
	}
	if at == nil {
		t.Fatalf("no stored checkpoint of size %d", n)
	}
	data, _ = json.Marshal(kept)
	os.WriteFile(filepath.Join(dir, "checkpoints.json"), data, 0o600)
	os.WriteFile(filepath.Join(dir, "ledger", "checkpoint"), at, 0o600)
	copyFile(t, filepath.Join(materialsFrom, "materials.jsonl"), filepath.Join(dir, "materials.jsonl"))
	cp := readManifest(t, materialsFrom)
	editManifest(t, dir, func(m *backup.Manifest) {
		m.Events, m.Head, m.Last, m.Checkpoint, m.Materials = cp.Events, cp.Head, cp.Last, cp.Checkpoint, cp.Materials
	})
	redoManifest(t, dir)
}
