package backup_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/backend"
	"github.com/keyledger/keyledger/ledger/backup"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/material"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/offline"
	"github.com/keyledger/keyledger/ledger/writer"
)

// materials is the fold a backup needs: the materials the ledger still
// refers to (projections/keystate in the product).
type materials map[string]string

func (m materials) Apply(recs []event.Record) {
	for _, r := range recs {
		switch b := r.Event.Body.(type) {
		case *event.KeyCreated:
			m[b.Material.ID] = b.Material.WrappedHash
		case *event.KeyDeleted:
			for _, id := range b.DestroyedMaterials {
				delete(m, id)
			}
		}
	}
}

func (m materials) LiveMaterials() map[string]string { return m }

func newFold() backup.Fold { return materials{} }

// openDataDir starts the embedded deployment of a data directory, as
// serve and restore do.
func openDataDir(t *testing.T, dir string) *backend.Backend {
	t.Helper()
	b, err := backend.Embedded(embedded.Options{DataDir: filepath.Join(dir, "jetstream"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// backedUp is a backup of a small deployment: a writer, a key with one
// material, a few uses of it.
type backedUp struct {
	dir        string // the backup
	vkey       string // its checkpoint verifier key
	bvkey      string // its backup (manifest) verifier key
	writerFile string // the deployment's writer key file
	wrapped    []byte // the material's root-wrapped bytes
	head       chain.Head
	src        string      // the data directory backed up
	signer     note.Signer // its checkpoint signing key
	bsigner    note.Signer
}

func newBackup(t *testing.T) backedUp {
	t.Helper()
	ctx := context.Background()
	src := t.TempDir()
	writerFile := filepath.Join(src, backup.WriterKeyFile)
	w, _, err := writer.LoadOrCreate(writerFile)
	if err != nil {
		t.Fatal(err)
	}
	b := openDataDir(t, src)
	defer b.Close()
	l, err := b.OpenLedger(ctx, ledger.Config{Writer: w})
	if err != nil {
		t.Fatal(err)
	}
	head, err := l.Replay(ctx, chain.Head{}, func(event.Record) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	l.Start(head)
	mats, err := b.OpenMaterials(ctx, material.Config{})
	if err != nil {
		t.Fatal(err)
	}
	wrapped := make([]byte, 60)
	rand.Read(wrapped)
	if err := mats.Put(ctx, "m1", wrapped); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, ev := range []*event.Event{
		{Operation: "RegisterWriter", Body: &event.WriterRegistered{WriterID: w.ID(), PublicKey: w.PublicText(), RegisteredBy: w.ID()}},
		{Operation: "CreateKey", KeyID: "k1", Body: &event.KeyCreated{KeySpec: "SYMMETRIC_DEFAULT", KeyUsage: "ENCRYPT_DECRYPT",
			Origin: "AWS_KMS", Material: event.MaterialRef{ID: "m1", WrappedHash: material.Commitment(wrapped)}}},
		{Operation: "Encrypt", KeyID: "k1", Body: &event.APICall{MaterialID: "m1"}},
		{Operation: "Decrypt", KeyID: "k1", Body: &event.APICall{MaterialID: "m1"}},
	} {
		ev.Time, ev.Account, ev.Region = t0.Add(time.Duration(i)*time.Minute), "111122223333", "us-east-1"
		if _, err := l.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	head = l.Head()
	l.Close()

	skey, vkey, _ := note.GenerateKey(rand.Reader, "backup-test")
	signer, _ := note.NewSigner(skey)
	r, err := b.OpenLedger(ctx, ledger.Config{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	cps, err := b.OpenCheckpoints(ctx, ledger.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	bskey, bvkey, _ := note.GenerateKey(rand.Reader, "keyledger-backup")
	bsigner, _ := note.NewSigner(bskey)
	dir := filepath.Join(t.TempDir(), "backup")
	sum, err := backup.Write(ctx, backup.Source{Stream: ledger.DefaultStream, Ledger: r, Checkpoints: cps, Materials: mats,
		Fold: newFold(), Verifier: vkey, ManifestSigner: bsigner, Signer: signer, Origin: "backup-test"}, dir)
	if err != nil || sum.Events != 4 || sum.Materials != 1 {
		t.Fatalf("backup.Write = %+v, %v", sum, err)
	}
	if n, err := cps.Count(ctx); err != nil || n != 0 {
		t.Fatalf("the deployment stores %d checkpoints (%v) after the backup: a backup must write nothing there", n, err)
	}
	return backedUp{dir: dir, vkey: vkey, bvkey: bvkey, writerFile: writerFile, wrapped: wrapped, head: head, src: src, signer: signer, bsigner: bsigner}
}

func (bu backedUp) open(t *testing.T) *backup.Backup {
	t.Helper()
	bk, err := backup.Open(bu.dir, bu.options())
	if err != nil {
		t.Fatal(err)
	}
	return bk
}

// options opens the backup with its keys, a rollback allowed.
func (bu backedUp) options() backup.Options {
	return backup.Options{Verifier: bu.vkey, BackupVerifier: bu.bvkey, Fold: newFold, Fresh: backup.Freshness{AllowRollback: true}}
}

// restoreReq restores into a new data directory at target.
func restoreReq(t *testing.T, target string, w *writer.Key, writerFile string) backup.RestoreRequest {
	return backup.RestoreRequest{DataDir: target, Stream: ledger.DefaultStream, Writer: w, WriterKeyFile: writerFile, Fold: newFold(),
		Open: func(dir string) (backup.Deployment, error) {
			return backend.Embedded(embedded.Options{DataDir: filepath.Join(dir, "jetstream"), Logger: slog.New(slog.DiscardHandler)})
		}}
}

// A restore into a new data directory lands there whole, the writer key
// beside it: its ledger is the backup's event for event, its material
// the backup's, and nothing is left half-built beside it.
func TestRestoreIntoDataDir(t *testing.T) {
	bu := newBackup(t)
	ctx := context.Background()
	w, err := writer.Load(bu.writerFile)
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "restored")
	res, err := bu.open(t).RestoreInto(ctx, restoreReq(t, target, w, bu.writerFile))
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 4 || res.Materials != 1 || res.Head.Hash != bu.head.Hash {
		t.Fatalf("RestoreInto = %+v, want the backup's 4 events (head %s) and 1 material", res, bu.head.Hash)
	}
	if _, err := os.Stat(target + ".restoring"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the restore left its build directory (%v)", err)
	}
	if got, _ := os.ReadFile(filepath.Join(target, backup.WriterKeyFile)); !bytes.Equal(got, mustRead(t, bu.writerFile)) {
		t.Fatal("the writer key was not copied into the restored data directory")
	}

	b := openDataDir(t, target)
	defer b.Close()
	l, err := b.OpenLedger(ctx, ledger.Config{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if head, err := l.Replay(ctx, chain.Head{}, func(event.Record) error { return nil }); err != nil || head.Hash != bu.head.Hash {
		t.Fatalf("the restored ledger's head %+v, %v; want %s", head, err, bu.head.Hash)
	}
	mats, err := b.OpenMaterials(ctx, material.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := mats.Get(ctx, "m1"); err != nil || !bytes.Equal(got, bu.wrapped) {
		t.Fatalf("the restored material: %v", err)
	}
}

// A restore never writes into a data directory that holds something, and
// one that fails (here: no writer key for a ledger that registered one)
// leaves neither the target nor its build directory behind.
func TestRestoreIntoRefuses(t *testing.T) {
	bu := newBackup(t)
	ctx := context.Background()
	w, _ := writer.Load(bu.writerFile)

	busy := t.TempDir()
	keep := filepath.Join(busy, "keep")
	os.WriteFile(keep, []byte("another deployment"), 0o600)
	if _, err := bu.open(t).RestoreInto(ctx, restoreReq(t, busy, w, bu.writerFile)); !errors.Is(err, backup.ErrDirNotEmpty) {
		t.Fatalf("restore into a non-empty directory: %v", err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Fatalf("the refused restore touched the directory: %v", err)
	}

	target := filepath.Join(t.TempDir(), "restored")
	if _, err := bu.open(t).RestoreInto(ctx, restoreReq(t, target, nil, "")); !errors.Is(err, ledger.ErrImportWriter) {
		t.Fatalf("restore without the writer key: %v, want ErrImportWriter", err)
	}
	for _, dir := range []string{target, target + ".restoring"} {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a failed restore left %s (%v)", dir, err)
		}
	}
}

// Open refuses a backup that was changed: a changed byte its manifest's
// digest catches; a changed event with the digest redone, which the
// signed checkpoint's root catches; a changed material with the digest
// redone, which the ledger's commitment catches; a checkpoint signed by
// another key.
func TestOpenRefusesTamperedBackup(t *testing.T) {
	events := filepath.Join(backup.LedgerDir, offline.EventsFile)
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, dir string)
		vkey   string // "": the backup's
	}{
		{name: "event changed", tamper: func(t *testing.T, dir string) {
			replace(t, dir, events, `"Decrypt"`, `"Encrypt"`, false)
		}},
		{name: "event changed, digest redone", tamper: func(t *testing.T, dir string) {
			replace(t, dir, events, `"Decrypt"`, `"Encrypt"`, true)
		}},
		{name: "material changed, digest redone", tamper: func(t *testing.T, dir string) {
			replace(t, dir, backup.MaterialsFile, `"wrapped":"`, `"wrapped":"AAAA`, true)
		}},
		{name: "checkpoint of another key", vkey: otherVkey(t)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bu := newBackup(t)
			if tc.tamper != nil {
				tc.tamper(t, bu.dir)
			}
			vkey := bu.vkey
			if tc.vkey != "" {
				vkey = tc.vkey
			}
			opt := bu.options()
			opt.Verifier = vkey
			_, err := backup.Open(bu.dir, opt)
			if !errors.Is(err, backup.ErrRefused) {
				t.Fatalf("Open = %v, want ErrRefused", err)
			}
			t.Log(err)
		})
	}
}

func otherVkey(t *testing.T) string {
	_, vkey, err := note.GenerateKey(rand.Reader, "backup-test")
	if err != nil {
		t.Fatal(err)
	}
	return vkey
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// replace changes the first old to new in a backup file; with redo it
// also puts the file's new size and digest into the manifest.
func replace(t *testing.T, dir, path, old, new string, redo bool) {
	t.Helper()
	p := filepath.Join(dir, path)
	b := mustRead(t, p)
	if !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%s holds no %s", path, old)
	}
	b = bytes.Replace(b, []byte(old), []byte(new), 1)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if !redo {
		return
	}
	mp := filepath.Join(dir, backup.ManifestFile)
	var m backup.Manifest
	if err := json.Unmarshal(mustRead(t, mp), &m); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	for i, f := range m.Files {
		if filepath.FromSlash(f.Path) == path {
			m.Files[i].Size, m.Files[i].SHA256 = int64(len(b)), hex.EncodeToString(sum[:])
		}
	}
	raw, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(mp, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Open refuses a cut older than the operator's reference, and a history
// other than the witness's whatever it is told, and refuses to guess
// without a reference.
func TestOpenFreshness(t *testing.T) {
	bu := newBackup(t)
	bk := bu.open(t)
	cut := bk.Checkpoint
	forked := cut
	forked.Root[0] ^= 1
	older := merkle.Checkpoint{Origin: cut.Origin, Size: cut.Size - 1}
	for _, tc := range []struct {
		name  string
		fresh backup.Freshness
		want  error // nil: opens
	}{
		{"no reference", backup.Freshness{}, backup.ErrNoFreshness},
		{"not before a time after the cut", backup.Freshness{NotBefore: bk.Last.Time.Add(time.Second)}, backup.ErrRollback},
		{"not before the cut's time", backup.Freshness{NotBefore: bk.Last.Time}, nil},
		{"a witness that saw more", backup.Freshness{Witness: &merkle.Checkpoint{Origin: cut.Origin, Size: cut.Size + 1}}, backup.ErrRollback},
		{"a witness that saw more, rollback allowed", backup.Freshness{Witness: &merkle.Checkpoint{Origin: cut.Origin, Size: cut.Size + 1}, AllowRollback: true}, nil},
		{"a witness that saw this cut", backup.Freshness{Witness: &cut}, nil},
		{"a witness that saw another tree of this size", backup.Freshness{Witness: &forked, AllowRollback: true}, backup.ErrFork},
		{"a witness that saw another, smaller tree", backup.Freshness{Witness: &older, AllowRollback: true}, backup.ErrFork},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt := bu.options()
			opt.Fresh = tc.fresh
			_, err := backup.Open(bu.dir, opt)
			if tc.want == nil && err != nil || tc.want != nil && (!errors.Is(err, tc.want) || !errors.Is(err, backup.ErrRefused)) {
				t.Fatalf("Open = %v, want %v", err, tc.want)
			}
		})
	}
}

// The backup's own ledger/ directory is a deletion journal: signed,
// covered by its checkpoint, the backup's events.
func TestBackupLedgerIsAJournal(t *testing.T) {
	bu := newBackup(t)
	opt := bu.options()
	opt.JournalDir = filepath.Join(bu.dir, backup.LedgerDir)
	bk, err := backup.Open(bu.dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	if j := bk.Journal; j == nil || j.Events != 4 || j.After != 0 || j.Checkpoint.Size != 4 {
		t.Fatalf("journal %+v", bk.Journal)
	}
}

// A backup from before manifest and writer signatures (LegacyFormat) is
// refused unless allowed, and then verified against its checkpoint.
func TestOpenLegacyBackup(t *testing.T) {
	bu := newBackup(t)
	sigs := filepath.Join(backup.LedgerDir, offline.SignaturesFile)
	if err := os.Remove(filepath.Join(bu.dir, sigs)); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(bu.dir, backup.SignatureFile))
	mp := filepath.Join(bu.dir, backup.ManifestFile)
	var m backup.Manifest
	if err := json.Unmarshal(mustRead(t, mp), &m); err != nil {
		t.Fatal(err)
	}
	m.Format, m.Last = backup.LegacyFormat, nil
	var files []backup.File
	for _, f := range m.Files {
		if filepath.FromSlash(f.Path) != sigs {
			files = append(files, f)
		}
	}
	m.Files = files
	raw, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(mp, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := backup.Open(bu.dir, bu.options()); !errors.Is(err, backup.ErrRefused) {
		t.Fatalf("Open(legacy) = %v, want ErrRefused", err)
	}
	opt := bu.options()
	opt.AllowUnsigned = true
	bk, err := backup.Open(bu.dir, opt)
	if err != nil || bk.SignedBy != "" || bk.Last.Index != 3 {
		t.Fatalf("Open(legacy, allowed) = %+v, %v", bk, err)
	}
	replace(t, bu.dir, filepath.Join(backup.LedgerDir, offline.EventsFile), `"Decrypt"`, `"Encrypt"`, true)
	if _, err := backup.Open(bu.dir, opt); !errors.Is(err, backup.ErrRefused) {
		t.Fatalf("Open(legacy, changed event) = %v, want ErrRefused", err)
	}
}

// noMaterials is a material store that holds nothing.
type noMaterials struct{}

func (noMaterials) GetChecked(context.Context, string, ...string) ([]byte, error) {
	return nil, material.ErrNotFound
}

// A material the ledger refers to and the store does not hold fails the
// backup, and the error says no deletion of it is recorded (not that one
// fell due).
func TestWriteNamesAMissingMaterial(t *testing.T) {
	bu := newBackup(t)
	ctx := context.Background()
	b := openDataDir(t, bu.src)
	defer b.Close()
	r, err := b.OpenLedger(ctx, ledger.Config{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	cps, err := b.ReadCheckpoints(ctx, ledger.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	_, err = backup.Write(ctx, backup.Source{Stream: ledger.DefaultStream, Ledger: r, Checkpoints: cps, Materials: noMaterials{},
		Fold: newFold(), Verifier: bu.vkey, ManifestSigner: bu.bsigner, Signer: bu.signer, Origin: "backup-test"}, filepath.Join(t.TempDir(), "b"))
	if err == nil || !strings.Contains(err.Error(), "no deletion of it is recorded") {
		t.Fatalf("Write = %v", err)
	}
}
