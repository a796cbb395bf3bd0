package backup

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/keyledger/keyledger/crypto/secret"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/material"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/offline"
)

// ErrRefused is wrapped by every error that means the backup (or the
// deletion journal) does not verify; the message names what failed.
var ErrRefused = errors.New("backup refused")

func refuse(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, args...))
}

// Unwrapper opens root-wrapped material (crypto/rootkey.Key). A restore
// given one proves every material opens under the escrowed root key.
type Unwrapper interface {
	Unwrap(wrapped []byte, materialID string) (secret.Bytes, error)
}

// Options say how to check a backup.
type Options struct {
	Verifier string      // the checkpoint verifier key (note vkey), from escrow: required
	Fold     func() Fold // a new, empty fold (projections/keystate.New)
	// Journal, if set, is the events (offline.EventsFile contents) of a
	// ledger that survived: deletions it records after the cut win.
	Journal []byte
	RootKey Unwrapper // optional
}

// Backup is a backup directory that verified.
type Backup struct {
	Manifest    Manifest
	Checkpoint  merkle.Checkpoint
	events      [][]byte
	signed      []byte
	checkpoints [][]byte
	materials   map[string][]byte // id → root-wrapped, only those to restore
	commitments map[string]string // id → commitment, of those
	deletions   []*event.Event    // to record again after the events
	// Deleted lists the materials the journal records destroyed after the
	// cut: they are not restored.
	Deleted []string
	// JournalEvents is how many events the journal held (0 without one).
	JournalEvents int
}

// Open reads a backup directory and verifies all of it before anything is
// restored: the manifest's digests of every file (and that no file is
// missing or extra), the checkpoint's signature under the verifier key,
// every chain link, that the events rebuild the checkpoint's Merkle root
// and are exactly the ones it covers, every stored checkpoint, that each
// live material's bytes match the ledger's commitment (and that no
// material is missing or extra), and the journal, if any. Any failure is
// ErrRefused with what failed.
func Open(dir string, opt Options) (*Backup, error) {
	raw, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, refuse("manifest: %v", err)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, refuse("manifest: %v", err)
	}
	if m.Format != Format {
		return nil, refuse("manifest: format %q, this build reads %q", m.Format, Format)
	}
	files, err := readFiles(dir, m)
	if err != nil {
		return nil, err
	}
	b := &Backup{Manifest: m, signed: files[checkpointPath]}

	res, err := offline.Verify(files[eventsPath], b.signed, opt.Verifier)
	var sigErr *offline.SignatureError
	switch {
	case errors.As(err, &sigErr):
		return nil, refuse("ledger/checkpoint: not signed by the verifier key (a forged or foreign checkpoint): %v", sigErr.Err)
	case err != nil:
		return nil, refuse("ledger: %v", err)
	case res.Uncovered() != 0:
		return nil, refuse("ledger: %d events after the checkpoint; a backup holds exactly the events its checkpoint covers", res.Uncovered())
	}
	b.Checkpoint = res.Checkpoint
	if err := b.checkManifestCut(); err != nil {
		return nil, err
	}
	if len(files[eventsPath]) > 0 {
		b.events = bytes.Split(bytes.TrimSuffix(files[eventsPath], []byte("\n")), []byte("\n"))
	}
	if len(b.events) > 0 && event.Of(b.events[len(b.events)-1]).String() != m.Head {
		return nil, refuse("manifest: its head hash is not the last event's")
	}
	tree, err := checkTree(b.events, b.Checkpoint)
	if err != nil {
		return nil, refuse("ledger: %v", err)
	}
	if err := json.Unmarshal(files[CheckpointsFile], &b.checkpoints); err != nil {
		return nil, refuse("%s: %v", CheckpointsFile, err)
	}
	if n, err := merkle.VerifyCheckpoints(b.checkpoints, opt.Verifier, tree.Root); err != nil {
		return nil, refuse("%s: %d verified, then: %v", CheckpointsFile, n, err)
	}
	if len(opt.Journal) > 0 {
		if err := b.applyJournal(opt.Journal); err != nil {
			return nil, err
		}
	}
	if err := b.checkMaterials(files[MaterialsFile], opt); err != nil {
		return nil, err
	}
	return b, nil
}

// checkManifestCut compares the manifest's description of the cut with
// what the verified ledger says.
func (b *Backup) checkManifestCut() error {
	m, cp := b.Manifest, b.Checkpoint
	if m.Events != cp.Size || m.Checkpoint.Size != cp.Size || m.Checkpoint.Origin != cp.Origin ||
		m.Checkpoint.Root != base64.StdEncoding.EncodeToString(cp.Root[:]) {
		return refuse("manifest: its cut (%d events, root %s) is not the signed checkpoint's (%d events)", m.Events, m.Checkpoint.Root, cp.Size)
	}
	return nil
}

// readFiles checks every file against the manifest and returns their
// contents by path.
func readFiles(dir string, m Manifest) (map[string][]byte, error) {
	want := map[string]File{}
	for _, f := range m.Files {
		want[filepath.FromSlash(f.Path)] = f
	}
	for _, p := range []string{eventsPath, checkpointPath, CheckpointsFile, MaterialsFile} {
		if _, ok := want[p]; !ok {
			return nil, refuse("manifest: does not list %s", filepath.ToSlash(p))
		}
	}
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if rel == ManifestFile {
			return nil
		}
		f, ok := want[rel]
		if !ok {
			return refuse("%s: a file the manifest does not list", filepath.ToSlash(rel))
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if int64(len(data)) != f.Size || digest(data) != f.SHA256 {
			return refuse("%s: its SHA-256 does not match the manifest (the file was changed)", f.Path)
		}
		out[rel] = data
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrRefused) {
			return nil, err
		}
		return nil, refuse("%v", err)
	}
	for p, f := range want {
		if _, ok := out[p]; !ok {
			return nil, refuse("%s: listed in the manifest but missing", f.Path)
		}
	}
	return out, nil
}

// checkMaterials checks the backup's materials against the commitments of
// the ledger at the cut, leaving out those the journal destroyed.
func (b *Backup) checkMaterials(data []byte, opt Options) error {
	recs, err := decode(b.events)
	if err != nil {
		return refuse("ledger: %v", err)
	}
	fold := opt.Fold()
	fold.Apply(recs)
	live := fold.LiveMaterials()
	deleted := map[string]bool{}
	for _, id := range b.Deleted {
		deleted[id] = true
	}
	b.materials, b.commitments = map[string][]byte{}, map[string]string{}
	dec := json.NewDecoder(bytes.NewReader(data))
	for line := 1; dec.More(); line++ {
		var ml materialLine
		if err := dec.Decode(&ml); err != nil {
			return refuse("%s line %d: %v", MaterialsFile, line, err)
		}
		want, ok := live[ml.ID]
		switch {
		case !ok:
			return refuse("%s: material %s is not one the ledger refers to", MaterialsFile, ml.ID)
		case material.Commitment(ml.Wrapped) != want:
			return refuse("%s: material %s does not match the ledger's commitment to it", MaterialsFile, ml.ID)
		case b.materials[ml.ID] != nil:
			return refuse("%s: material %s appears twice", MaterialsFile, ml.ID)
		}
		if opt.RootKey != nil {
			k, err := opt.RootKey.Unwrap(ml.Wrapped, ml.ID)
			if err != nil {
				return refuse("material %s does not open under the given root key (the wrong root key?)", ml.ID)
			}
			k.Clear()
		}
		b.materials[ml.ID] = ml.Wrapped
	}
	for _, id := range slices.Sorted(maps.Keys(live)) {
		if b.materials[id] == nil {
			return refuse("%s: material %s, which the ledger refers to, is missing", MaterialsFile, id)
		}
		if deleted[id] {
			delete(b.materials, id)
			continue
		}
		b.commitments[id] = live[id]
	}
	return nil
}

// applyJournal checks that the journal is the same ledger as the backup up
// to the cut and collects the deletions it records after it.
func (b *Backup) applyJournal(journal []byte) error {
	lines := bytes.Split(bytes.TrimSuffix(journal, []byte("\n")), []byte("\n"))
	b.JournalEvents = len(lines)
	if int64(len(lines)) < b.Checkpoint.Size {
		return refuse("deletion journal: %d events, fewer than the backup's %d; it is older than the backup", len(lines), b.Checkpoint.Size)
	}
	linker := chain.NewLinker(chain.Head{})
	var tree merkle.Tree
	for i, raw := range lines {
		if _, err := linker.Link(uint64(i+1), raw); err != nil {
			return refuse("deletion journal: line %d: %v", i+1, err)
		}
		if int64(i) < b.Checkpoint.Size {
			if err := tree.Append(raw); err != nil {
				return refuse("deletion journal: %v", err)
			}
		}
	}
	if root, err := tree.Root(b.Checkpoint.Size); err != nil || root != b.Checkpoint.Root {
		return refuse("deletion journal: its first %d events are not the backup's (another ledger, or a changed one)", b.Checkpoint.Size)
	}
	seen := map[string]bool{}
	for i := b.Checkpoint.Size; i < int64(len(lines)); i++ {
		ev, err := event.Decode(lines[i])
		if err != nil {
			return refuse("deletion journal: event %d: %v", i, err)
		}
		var destroyed []string
		switch body := ev.Body.(type) {
		case *event.KeyDeleted:
			destroyed = body.DestroyedMaterials
		case *event.KeyMaterialDeleted:
			destroyed = []string{body.MaterialID}
		default:
			continue
		}
		ev.Index, ev.Prev = 0, event.Hash{}
		b.deletions = append(b.deletions, ev)
		for _, id := range destroyed {
			if !seen[id] {
				seen[id] = true
				b.Deleted = append(b.Deleted, id)
			}
		}
	}
	slices.Sort(b.Deleted)
	return nil
}

// MaterialStore stores root-wrapped material (material.Store).
type MaterialStore interface {
	MaterialReader
	Put(ctx context.Context, id string, wrapped []byte) error
}

// Target is an empty deployment to restore into.
type Target struct {
	Ledger      *ledger.Ledger // opened, not started; Restore starts and closes it
	Checkpoints *ledger.Checkpoints
	Materials   MaterialStore
	Fold        Fold // empty; for checking what was restored
}

// Result is what Restore wrote and checked.
type Result struct {
	Events    uint64 // on the restored ledger: the backup's and the recorded deletions
	Deletions int    // deletion events recorded again from the journal
	Materials int
	Head      chain.Head
}

// Restore writes a verified backup into t, records again the deletions the
// journal holds, and then verifies what was written: every chain link of
// the restored stream, the Merkle root at the cut, and every live
// material's commitment read back through the store. Materials are sealed
// under fresh per-material keys as they are stored.
func (b *Backup) Restore(ctx context.Context, t Target) (Result, error) {
	stored, err := t.Checkpoints.All(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("backup: %w", err)
	}
	if len(stored) > 0 {
		return Result{}, errors.New("backup: the target already holds checkpoints; restore into an empty deployment")
	}
	head, err := t.Ledger.Import(ctx, b.events)
	if errors.Is(err, ledger.ErrNotEmpty) {
		return Result{}, errors.New("backup: the target ledger is not empty; restore into an empty deployment")
	}
	if err != nil {
		return Result{}, fmt.Errorf("backup: writing the ledger: %w", err)
	}
	for _, s := range b.checkpoints {
		if err := t.Checkpoints.Put(ctx, s); err != nil {
			return Result{}, fmt.Errorf("backup: writing checkpoints: %w", err)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(b.materials)) {
		if err := t.Materials.Put(ctx, id, b.materials[id]); err != nil {
			return Result{}, fmt.Errorf("backup: writing material: %w", err)
		}
	}
	// Fold what was imported, as a start-up does, so the writer knows the
	// registered writers and where the stream stands.
	if head, err = t.Ledger.Replay(ctx, chain.Head{}, func(event.Record) error { return nil }); err != nil {
		return Result{}, fmt.Errorf("backup: reading back the ledger: %w", err)
	}
	t.Ledger.Start(head)
	for _, ev := range b.deletions {
		if _, err := t.Ledger.Append(ctx, ev); err != nil {
			t.Ledger.Close()
			return Result{}, fmt.Errorf("backup: recording a deletion from the journal: %w", err)
		}
	}
	t.Ledger.Close()
	return b.verifyRestored(ctx, t)
}

// verifyRestored reads the restored deployment back and checks it.
func (b *Backup) verifyRestored(ctx context.Context, t Target) (Result, error) {
	var tree merkle.Tree
	var recs []event.Record
	head, err := t.Ledger.Replay(ctx, chain.Head{}, func(r event.Record) error {
		recs = append(recs, r)
		if tree.Size() < b.Checkpoint.Size {
			return tree.Append(r.Raw)
		}
		return nil
	})
	if err != nil {
		return Result{}, fmt.Errorf("backup: the restored ledger does not verify: %w", err)
	}
	if want := uint64(len(b.events) + len(b.deletions)); head.Count != want {
		return Result{}, fmt.Errorf("backup: the restored ledger holds %d events, expected %d", head.Count, want)
	}
	if root, err := tree.Root(b.Checkpoint.Size); err != nil || root != b.Checkpoint.Root {
		return Result{}, errors.New("backup: the restored ledger does not rebuild the checkpoint's Merkle root")
	}
	t.Fold.Apply(recs)
	live := t.Fold.LiveMaterials()
	for id, want := range live {
		if want != b.commitments[id] {
			return Result{}, fmt.Errorf("backup: the restored ledger refers to material %s, which was not restored", id)
		}
		wrapped, err := t.Materials.Get(ctx, id)
		if err != nil {
			return Result{}, fmt.Errorf("backup: reading back material %s: %w", id, err)
		}
		if material.Commitment(wrapped) != want {
			return Result{}, fmt.Errorf("backup: restored material %s does not match the ledger's commitment", id)
		}
	}
	return Result{Events: head.Count, Deletions: len(b.deletions), Materials: len(live), Head: head}, nil
}
