package backup

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/keyledger/keyledger/crypto/secret"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/checkpoint"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/material"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/offline"
	"github.com/keyledger/keyledger/ledger/segment"
	"github.com/keyledger/keyledger/ledger/snapshot"
	"github.com/keyledger/keyledger/ledger/writer"
	"golang.org/x/mod/sumdb/tlog"
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
	Verifier string // the checkpoint verifier key (note vkey), from escrow: required
	// BackupVerifier is the backup signing key's verifier key (note vkey),
	// from escrow: the manifest must verify with it (manifest.go).
	BackupVerifier string
	// AllowUnsigned opens a LegacyFormat backup, which has no manifest
	// signature and no writer signatures: verified against its checkpoint
	// alone, as it was written.
	AllowUnsigned bool
	// Fresh is what the operator knows of the newest state (fresh.go).
	Fresh Freshness
	Fold  func() Fold // a new, empty fold (projections/keystate.New)
	// FoldFrom starts a Fold from a snapshot's body, for a backup of a
	// ledger after removed segments (base.go): projections/resume's image.
	FoldFrom func(body []byte) (Fold, error)
	// JournalDir, if set, is the deletion journal: an export directory of a
	// ledger that survived (journal.go). Deletions it records after the
	// cut win.
	JournalDir string
	RootKey    Unwrapper // optional
}

// Backup is a backup directory that verified. It holds the backup's live
// state (materials, deletions to record again), never its events or its
// stored checkpoints: Restore reads them again from the directory.
type Backup struct {
	Manifest   Manifest
	Checkpoint merkle.Checkpoint
	// Last is the last event at the cut (covered by the checkpoint).
	Last EventInfo
	// SignedBy names the backup signing key that signed the manifest ("" for
	// a LegacyFormat backup, which has no signature).
	SignedBy   string
	dir        string
	eventsFile File // the manifest's entry for the events
	sigsFile   File // for the writer signatures (none in LegacyFormat)
	cpsFile    File // and for the stored checkpoints
	signed     []byte
	verifier   string
	// firstStored is the first stored checkpoint (nil if none): a target
	// that holds it is an unfinished restore of this backup.
	firstStored []byte
	materials   map[string][]byte // id → root-wrapped, only those to restore
	commitments map[string]string // id → commitment, of those
	deletions   []*event.Event    // to record again after the events
	atWitness   tlog.Hash         // the root at the witness's size, if ≤ the cut
	atWitnessOK bool
	witness     *merkle.Checkpoint
	// After removed segments (base.go): the base, and the snapshot the
	// state continues (its header, and body for the restored deployment).
	base         *baseRecord
	snapHeader   snapshot.Header
	snapBody     []byte
	baseRemoved  bool // a SegmentRemoved event at or before the cut names the base
	foldFromBody func(body []byte) (Fold, error)
	// Deleted lists the materials the journal records destroyed after the
	// cut: they are not restored.
	Deleted []string
	// Journal describes the deletion journal; nil without one.
	Journal *JournalInfo
}

// Open reads a backup directory and verifies all of it before anything is
// restored: the manifest's signature with the backup verifier key, its
// digests of every file (and that no file is missing or extra), the
// checkpoint's signature under the verifier key, that every event is in a
// message a registered writer signed and links (chain.Folder), that the
// events rebuild the checkpoint's Merkle root and are exactly the ones it
// covers, every stored checkpoint, that each live material's bytes match
// the ledger's commitment (and that no material is missing or extra), the
// journal, if any, and that the cut is not older than opt.Fresh says (a
// rollback is refused unless allowed). Any failure is ErrRefused with
// what failed.
//
// The events are checked in one streaming pass (hashed, folded, added to a
// compact Merkle range and applied to the fold as they are read), and each
// stored checkpoint as the pass reaches its size, so memory does not grow
// with the ledger's length or with how many checkpoints it has.
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
	b := &Backup{Manifest: m, dir: dir, verifier: opt.Verifier, witness: opt.Fresh.Witness}
	switch {
	case m.Format == Format:
		sig, err := os.ReadFile(filepath.Join(dir, SignatureFile))
		if err != nil {
			return nil, refuse("%s: %v: %v", SignatureFile, ErrManifestSignature, err)
		}
		if opt.BackupVerifier == "" {
			return nil, refuse("no backup verifier key given to check the manifest's signature with")
		}
		if b.SignedBy, err = verifyManifest(raw, sig, opt.BackupVerifier); err != nil {
			return nil, refuse("%s: %v", SignatureFile, err)
		}
	case m.Format == LegacyFormat && opt.AllowUnsigned:
	case m.Format == LegacyFormat:
		return nil, refuse("manifest: format %q has no manifest signature and no writer signatures; "+
			"restore it only if you trust where it was kept (allow unsigned backups explicitly)", m.Format)
	default:
		return nil, refuse("manifest: format %q, this build reads %q", m.Format, Format)
	}
	files, err := readFiles(dir, m)
	if err != nil {
		return nil, err
	}
	b.signed = files[checkpointPath]
	for _, f := range m.Files {
		switch filepath.FromSlash(f.Path) {
		case eventsPath:
			b.eventsFile = f
		case signaturesPath:
			b.sigsFile = f
		case CheckpointsFile:
			b.cpsFile = f
		}
	}
	if b.Checkpoint, err = merkle.Open(b.signed, opt.Verifier); err != nil {
		return nil, refuse("ledger/checkpoint: not signed by the verifier key (a forged or foreign checkpoint): %v", err)
	}
	if err := b.checkManifestCut(); err != nil {
		return nil, err
	}
	fold, err := b.startFold(files, opt)
	if err != nil {
		return nil, err
	}
	if err := b.checkEvents(fold); err != nil {
		return nil, err
	}
	if opt.JournalDir != "" {
		if err := b.applyJournal(opt.JournalDir); err != nil {
			return nil, err
		}
	}
	if err := b.checkMaterials(files[MaterialsFile], fold.LiveMaterials(), opt); err != nil {
		return nil, err
	}
	if err := b.checkFresh(opt.Fresh); err != nil {
		return b, err
	}
	return b, nil
}

// checkEvents reads the events file once: its digest, every message's
// writer signature and every chain link, the Merkle root at the cut, the
// head hash, and folds every event; and beside it the stored checkpoints:
// the file's digest and each one's signature and root.
func (b *Backup) checkEvents(fold Fold) error {
	lr, err := openLines(filepath.Join(b.dir, eventsPath))
	if err != nil {
		return refuse("%v", err)
	}
	defer lr.close()
	var src recordSource = &linkedEvents{lines: lr, links: chain.NewLinks(nil)}
	var sigs *signedEvents
	if b.Manifest.Format != LegacyFormat {
		sr, err := openLines(filepath.Join(b.dir, signaturesPath))
		if err != nil {
			return refuse("%v", err)
		}
		defer sr.close()
		f := chain.NewFolder()
		if b.base != nil {
			if f, err = b.base.Base.Folder(); err != nil {
				return refuse("%s: %v", BaseFile, err)
			}
		}
		sigs = &signedEvents{events: lr, sigs: sr, folder: f}
		src = sigs
	}
	cr, err := openCheckpoints(filepath.Join(b.dir, CheckpointsFile))
	if err != nil {
		return refuse("%s: %v", CheckpointsFile, err)
	}
	defer cr.close()
	check := newCheckpointCheck(func() (storedCheckpoint, error) {
		s, err := cr.next()
		if err != nil {
			return storedCheckpoint{}, err
		}
		if cr.pos == 1 {
			b.firstStored = bytes.Clone(s)
		}
		cp, err := merkle.Open(s, b.verifier)
		if err != nil {
			return storedCheckpoint{}, fmt.Errorf("checkpoint %d: %v", cr.pos, err)
		}
		return storedCheckpoint{pos: cr.pos, cp: cp}, nil
	})
	var want []int64
	if w := b.witness; w != nil && w.Size <= b.Checkpoint.Size {
		want = append(want, w.Size)
	}
	acc, err := rootsAt(b.baseOrEmpty())(want...)
	if err != nil {
		return refuse("%s: %v", BaseFile, err)
	}
	err = b.streamEvents(src, acc, check, &folder{fold: fold})
	// A file that was changed is reported as such, whatever broke first.
	for _, f := range []struct {
		r *lineReader
		f File
	}{{lr, b.eventsFile}, {sigsReader(sigs), b.sigsFile}} {
		if f.r == nil {
			continue
		}
		if ok, derr := f.r.matches(f.f); derr != nil {
			return refuse("%s: %v", f.f.Path, derr)
		} else if !ok {
			return refuse("%s: its SHA-256 does not match the manifest (the file was changed)", f.f.Path)
		}
	}
	if ok, derr := cr.matches(b.cpsFile); derr != nil {
		return refuse("%s: %v", b.cpsFile.Path, derr)
	} else if !ok {
		return refuse("%s: its SHA-256 does not match the manifest (the file was changed)", b.cpsFile.Path)
	}
	if err != nil {
		return err
	}
	if sigs != nil {
		if err := offline.CheckNamedWriters(b.Checkpoint.Known(), sigs.folder.Known()); err != nil {
			return refuse("ledger: %v", err)
		}
	}
	if b.base != nil && !b.baseRemoved {
		return refuse("%s: no SegmentRemoved event among the events names the base", BaseFile)
	}
	b.atWitness, b.atWitnessOK = witnessRoot(acc, b.witness)
	err = check.finish(acc)
	if err == nil {
		err = check.verifyLate(rootsAt(b.baseOrEmpty()), func(add func([]byte)) error {
			return eachLine(filepath.Join(b.dir, eventsPath), b.Checkpoint.Size-int64(b.baseOrEmpty().FirstIndex), add)
		})
	}
	if err != nil {
		return refuse("%s: %d verified, then: %v", CheckpointsFile, check.checked, err)
	}
	return nil
}

// startFold returns the fold the events after the backup's start go into:
// opt.Fold's, or after removed segments (base.go) one started from the
// backup's snapshot, once the base and snapshot files checked out.
func (b *Backup) startFold(files map[string][]byte, opt Options) (Fold, error) {
	rawBase, hasBase := files[BaseFile]
	if !hasBase {
		if _, ok := files[SnapshotFile]; ok {
			return nil, refuse("%s without %s", SnapshotFile, BaseFile)
		}
		return opt.Fold(), nil
	}
	var rec baseRecord
	if err := json.Unmarshal(rawBase, &rec); err != nil || rec.Base.Empty() {
		return nil, refuse("%s: malformed", BaseFile)
	}
	if err := checkBaseTree(rec); err != nil {
		return nil, refuse("%s: %v", BaseFile, err)
	}
	named := b.Checkpoint.Writers() // a revoked writer's snapshot is not trusted
	if err := checkBaseWriters(rec.Base, b.Checkpoint.Known()); err != nil {
		return nil, refuse("%s: %v", BaseFile, err)
	}
	raw, ok := files[SnapshotFile]
	if !ok {
		return nil, refuse("manifest: a backup after removed segments (%s) must hold %s", BaseFile, SnapshotFile)
	}
	h, body, err := snapshot.Check(raw, b.Manifest.Stream, trustedWriters(named))
	if err != nil {
		return nil, refuse("%s: %v", SnapshotFile, err)
	}
	if h.Pos()+1 < rec.Base.FirstIndex || int64(h.Pos()) >= b.Checkpoint.Size {
		return nil, refuse("%s: it covers event %d, not one from the base's last (%d) to the cut's", SnapshotFile, h.Pos(), rec.Base.FirstIndex-1)
	}
	if hash, _ := h.EventHash(); h.Pos()+1 == rec.Base.FirstIndex && hash.String() != rec.Base.Prev {
		return nil, refuse("%s: it covers event %d with another hash than the base's", SnapshotFile, h.Pos())
	}
	if opt.FoldFrom == nil {
		return nil, refuse("a backup after removed segments needs a fold from its snapshot")
	}
	fold, err := opt.FoldFrom(body)
	if err != nil {
		return nil, refuse("%s: %v", SnapshotFile, err)
	}
	b.base, b.snapHeader, b.snapBody, b.foldFromBody = &rec, h, body, opt.FoldFrom
	return fold, nil
}

// StartsAt is the first event the backup holds: 0, or after removed
// (archived) segments the base's, with the event the snapshot the state
// starts from covers.
func (b *Backup) StartsAt() (first, snapshotIndex uint64) {
	if b.base == nil {
		return 0, 0
	}
	return b.base.Base.FirstIndex, b.snapHeader.Pos()
}

// baseOrEmpty is where the backup's ledger starts.
func (b *Backup) baseOrEmpty() segment.Base {
	if b.base == nil {
		return segment.Base{}
	}
	return b.base.Base
}

// foldAfter is where the fold of the backup's events starts.
func (b *Backup) foldAfter() foldAfter {
	if b.base == nil {
		return foldAfter{}
	}
	hash, _ := b.snapHeader.EventHash()
	return foldAfter{n: int64(b.snapHeader.Pos()) + 1, hash: hash}
}

func sigsReader(s *signedEvents) *lineReader {
	if s == nil {
		return nil
	}
	return s.sigs
}

// recordSource yields a backup's events, a message at a time.
type recordSource interface {
	next() ([]event.Record, error) // io.EOF after the last
}

// linkedEvents reads a LegacyFormat backup's events, one a "message",
// linking each (there are no writer signatures to check).
type linkedEvents struct {
	lines *lineReader
	links *chain.Links
}

func (l *linkedEvents) next() ([]event.Record, error) {
	raw, err := l.lines.next()
	if err != nil {
		return nil, err
	}
	i := l.lines.line
	h, err := l.links.Link(uint64(i), raw)
	if err != nil {
		var bl *chain.BrokenLinkError
		if errors.As(err, &bl) {
			return nil, &offline.LinkError{Line: i, Link: bl}
		}
		return nil, fmt.Errorf("line %d: %v", i, err)
	}
	raw = bytes.Clone(raw) // the fold may keep it past the next line
	ev, err := event.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("event %d: %v", i-1, err)
	}
	return []event.Record{{Seq: uint64(i), Event: ev, Raw: raw, Hash: h, Pos: uint64(i - 1)}}, nil
}

// streamEvents checks and folds the events up to the cut. Events after it
// are allowed only to complete the message the cut falls in (so that its
// writer signature can be checked); they are neither folded nor restored.
func (b *Backup) streamEvents(src recordSource, acc *roots, check *checkpointCheck, f *folder) error {
	cp := b.Checkpoint
	n := int64(b.baseOrEmpty().FirstIndex)
	var last event.Record
	from := b.foldAfter()
	for {
		recs, err := src.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return refuse("ledger: %v", err)
		}
		if n >= cp.Size {
			return refuse("ledger: events after the checkpoint's %d; a backup holds exactly the events its checkpoint covers, and the rest of the message the last one is in", cp.Size)
		}
		for _, r := range recs {
			n++
			if n > cp.Size {
				continue
			}
			acc.add(r.Raw)
			if err := check.passed(acc); err != nil {
				return refuse("%s: %d verified, then: %v", CheckpointsFile, check.checked, err)
			}
			switch {
			case n > from.n:
				f.add(r)
			case n == from.n && r.Hash != from.hash:
				return refuse("%s: it covers event %d with hash %s, the ledger holds %s", SnapshotFile, r.Pos, from.hash, r.Hash)
			}
			if b.base != nil && namesBase(r.Event, b.base.Base) {
				b.baseRemoved = true
			}
			last = r
		}
	}
	f.flush()
	if n < cp.Size {
		return refuse("ledger: truncated: the signed checkpoint covers %d events, the backup has %d", cp.Size, n)
	}
	if root, err := acc.rootAt(cp.Size); err != nil || root != cp.Root {
		return refuse("ledger: the first %d events do not match the signed checkpoint's root (an event was changed, dropped, inserted or reordered)", cp.Size)
	}
	if cp.Size > 0 && last.Event != nil {
		if last.Hash.String() != b.Manifest.Head {
			return refuse("manifest: its head hash is not the last event's")
		}
		b.Last = eventInfo(last)
		if l := b.Manifest.Last; l != nil && (l.Index != last.Pos || !l.Time.Equal(last.Event.Time)) {
			return refuse("manifest: its last event (#%d at %s) is not the cut's", l.Index, l.Time)
		}
	}
	return nil
}

// checkManifestCut compares the manifest's description of the cut with
// what the signed checkpoint says.
func (b *Backup) checkManifestCut() error {
	m, cp := b.Manifest, b.Checkpoint
	if m.Events != cp.Size || m.Checkpoint.Size != cp.Size || m.Checkpoint.Origin != cp.Origin ||
		m.Checkpoint.Root != base64.StdEncoding.EncodeToString(cp.Root[:]) {
		return refuse("manifest: its cut (%d events, root %s) is not the signed checkpoint's (%d events)", m.Events, m.Checkpoint.Root, cp.Size)
	}
	return nil
}

// readFiles checks that the directory holds exactly the files the manifest
// lists and returns the contents of the small ones (bounded by live state),
// checked against their digests. The events, their signatures and the
// stored checkpoints, which grow with history, are checked as they are
// streamed (checkEvents).
func readFiles(dir string, m Manifest) (map[string][]byte, error) {
	want := map[string]File{}
	for _, f := range m.Files {
		want[filepath.FromSlash(f.Path)] = f
	}
	required := []string{eventsPath, checkpointPath, CheckpointsFile, MaterialsFile}
	if m.Format != LegacyFormat {
		required = append(required, signaturesPath)
	}
	for _, p := range required {
		if _, ok := want[p]; !ok {
			return nil, refuse("manifest: does not list %s", filepath.ToSlash(p))
		}
	}
	out := map[string][]byte{}
	seen := map[string]bool{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if rel == ManifestFile || (rel == SignatureFile && m.Format != LegacyFormat) {
			return nil
		}
		f, ok := want[rel]
		if !ok {
			return refuse("%s: a file the manifest does not list", filepath.ToSlash(rel))
		}
		seen[rel] = true
		if rel == eventsPath || rel == signaturesPath || rel == CheckpointsFile {
			return nil // streamed, and checked as they are (checkEvents)
		}
		// The small files (the checkpoint, materials, base and snapshot)
		// are read whole.
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
		if !seen[p] {
			return nil, refuse("%s: listed in the manifest but missing", f.Path)
		}
	}
	return out, nil
}

// checkMaterials checks the backup's materials against the commitments of
// the ledger at the cut (live), leaving out those the journal destroyed.
func (b *Backup) checkMaterials(data []byte, live map[string]string, opt Options) error {
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

// MaterialStore stores root-wrapped material (material.Store).
type MaterialStore interface {
	MaterialReader
	Put(ctx context.Context, id string, wrapped []byte) error
}

// Target is an empty deployment to restore into.
type Target struct {
	// Ledger is opened, not started; Restore starts and closes it only to
	// record deletions again (otherwise it is left unstarted).
	Ledger      *ledger.Ledger
	Checkpoints *checkpoint.Store
	Materials   MaterialStore
	Fold        Fold // empty; for checking what was restored

	// For a backup after removed segments (base.go) Ledger is nil:
	// ImportAfterBase imports the events into the empty deployment
	// (ledger.ImportAfterBase) and returns the ledger opened, and the
	// backup's snapshot is stored again in Snapshots for the restored
	// stream, its body restated by Rebase (the head's new stream
	// sequence, and every chain's head there: the restored stream packs
	// events into other messages) and signed with Writer.
	ImportAfterBase func(ctx context.Context, base segment.Base, tree merkle.Frontier, next func() ([]byte, error)) (*ledger.Ledger, error)
	Snapshots       interface {
		Put(ctx context.Context, h snapshot.Header, body []byte, key *writer.Key) error
	}
	Writer *writer.Key
	Rebase func(body []byte, seq uint64, chains map[string]chain.ChainHead) ([]byte, error)
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
// under fresh per-material keys as they are stored. The events are read
// again from the backup directory as they are written, and must hash to
// the digest Open verified.
//
// The signed checkpoints are stored first, then the materials, then the
// events: a restore interrupted before its last event leaves a ledger
// shorter than its newest signed checkpoint, which `keyledger serve` and
// `audit verify` refuse as truncated, and which a second Restore names as
// an unfinished restore (ErrUnfinished) instead of adding to it.
func (b *Backup) Restore(ctx context.Context, t Target) (Result, error) {
	stored, err := t.Checkpoints.Count(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("backup: %w", err)
	}
	if stored > 0 {
		if t.Ledger == nil {
			return Result{}, errors.New("backup: the target already holds checkpoints; restore into an empty deployment " +
				"(an unfinished restore: delete its streams and restore again)")
		}
		return Result{}, b.notEmpty(ctx, t)
	}
	if b.base != nil && (t.ImportAfterBase == nil || t.Snapshots == nil || t.Writer == nil || t.Rebase == nil) {
		return Result{}, errors.New("backup: a backup after removed segments is restored with ImportAfterBase, Snapshots, Writer and Rebase")
	}
	if err := b.putCheckpoints(ctx, t.Checkpoints); err != nil {
		return Result{}, err
	}
	for _, id := range slices.Sorted(maps.Keys(b.materials)) {
		if err := t.Materials.Put(ctx, id, b.materials[id]); err != nil {
			return Result{}, fmt.Errorf("backup: writing material: %w", err)
		}
	}
	if b.base == nil {
		if err := b.importEvents(ctx, t.Ledger); err != nil {
			return Result{}, err
		}
	} else {
		l, err := b.importAfterBase(ctx, t)
		if err != nil {
			return Result{}, err
		}
		t.Ledger = l
		if err := b.putSnapshot(ctx, t); err != nil {
			return Result{}, err
		}
	}
	if len(b.deletions) > 0 {
		if err := b.recordDeletions(ctx, t.Ledger); err != nil {
			return Result{}, err
		}
	}
	return b.verifyRestored(ctx, t)
}

// recordDeletions appends the journal's deletions to the imported ledger.
func (b *Backup) recordDeletions(ctx context.Context, l *ledger.Ledger) error {
	// Fold what was imported, as a start-up does, so the writer knows the
	// registered writers and where the stream stands.
	head, err := l.Replay(ctx, chain.Head{}, func(event.Record) error { return nil })
	if err != nil {
		return fmt.Errorf("backup: reading back the ledger: %w", err)
	}
	l.Start(head)
	defer l.Close()
	for _, ev := range b.deletions {
		if _, err := l.Append(ctx, ev); err != nil {
			return fmt.Errorf("backup: recording a deletion from the journal: %w", err)
		}
	}
	return nil
}

// ErrUnfinished means the target holds a restore of this backup that was
// interrupted: its checkpoints are the backup's, its ledger is shorter.
var ErrUnfinished = errors.New("backup: the target holds an unfinished restore of this backup")

// putCheckpoints stores the backup's checkpoints, read again from the
// file one at a time; each must still open under the verifier key, and the
// file must still be the one Open verified.
func (b *Backup) putCheckpoints(ctx context.Context, c *checkpoint.Store) error {
	cr, err := openCheckpoints(filepath.Join(b.dir, CheckpointsFile))
	if err != nil {
		return fmt.Errorf("backup: %s: %w", CheckpointsFile, err)
	}
	defer cr.close()
	for {
		s, err := cr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil {
			_, err = merkle.Open(s, b.verifier)
		}
		if err != nil {
			return fmt.Errorf("backup: %s changed after it was verified: %v", b.cpsFile.Path, err)
		}
		if err := c.Keep(ctx, s); err != nil { // the backup's, thinned already
			return fmt.Errorf("backup: writing checkpoints: %w", err)
		}
	}
	if ok, err := cr.matches(b.cpsFile); err != nil || !ok {
		return fmt.Errorf("backup: %s changed after it was verified", b.cpsFile.Path)
	}
	return nil
}

// notEmpty explains why a target that already holds checkpoints is
// refused: an unfinished restore of this backup, or another deployment.
func (b *Backup) notEmpty(ctx context.Context, t Target) error {
	var first []byte
	if next, err := t.Checkpoints.Reader(ctx); err == nil {
		first, _ = next(ctx)
	}
	if b.firstStored == nil || !bytes.Equal(first, b.firstStored) {
		return errors.New("backup: the target already holds checkpoints; restore into an empty deployment")
	}
	var n uint64
	head, err := t.Ledger.Replay(ctx, chain.Head{}, func(event.Record) error { n++; return nil })
	if err != nil || head.Count < uint64(b.Checkpoint.Size) {
		return fmt.Errorf("%w (its ledger holds %d of the backup's %d events; serve refuses it as truncated): "+
			"delete the target's streams (the ledger, its _CHECKPOINTS, _CHECKPOINTS_RECENT and the material streams) and restore again", ErrUnfinished, n, b.Checkpoint.Size)
	}
	return errors.New("backup: the target already holds this backup's ledger (restored before); restore into an empty deployment")
}

// importEvents streams the backup's events into the target ledger.
func (b *Backup) importEvents(ctx context.Context, l *ledger.Ledger) error {
	return b.readEvents(func(next func() ([]byte, error)) error {
		_, err := l.ImportFrom(ctx, next)
		return err
	})
}

// importAfterBase streams the backup's events into the target after its
// base (ledger.ImportAfterBase) and returns the ledger opened.
func (b *Backup) importAfterBase(ctx context.Context, t Target) (*ledger.Ledger, error) {
	var l *ledger.Ledger
	err := b.readEvents(func(next func() ([]byte, error)) error {
		var err error
		l, err = t.ImportAfterBase(ctx, b.base.Base, b.base.Tree, next)
		return err
	})
	return l, err
}

// readEvents hands import the backup's events up to the cut, read again
// from the directory, and checks they are still the ones Open verified.
func (b *Backup) readEvents(importFn func(next func() ([]byte, error)) error) error {
	lr, err := openLines(filepath.Join(b.dir, eventsPath))
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer lr.close()
	lines := b.Checkpoint.Size - int64(b.baseOrEmpty().FirstIndex)
	err = importFn(func() ([]byte, error) {
		if int64(lr.line) == lines {
			return nil, io.EOF // the rest completes the cut's message
		}
		return lr.next()
	})
	if errors.Is(err, ledger.ErrNotEmpty) {
		return errors.New("backup: the target ledger is not empty; restore into an empty deployment")
	}
	if err != nil {
		return fmt.Errorf("backup: writing the ledger: %w", err)
	}
	if ok, err := lr.matches(b.eventsFile); err != nil || !ok || int64(lr.line) != lines {
		return fmt.Errorf("backup: %s changed after it was verified", b.eventsFile.Path)
	}
	return nil
}

// putSnapshot stores the backup's snapshot again for the restored stream:
// the same state, its head's stream sequence the restored one.
func (b *Backup) putSnapshot(ctx context.Context, t Target) error {
	h := b.snapHeader
	seq := b.base.Base.Seq // the snapshot is of the base's last event
	at, err := b.base.Base.Heads()
	if err != nil {
		return fmt.Errorf("backup: the base: %w", err)
	}
	heads := chain.Heads(at)
	if heads == nil {
		heads = chain.Heads{}
	}
	if h.Pos() >= b.base.Base.FirstIndex {
		seq = 0
		stop := errors.New("found")
		_, err := t.Ledger.Replay(ctx, chain.Head{}, func(r event.Record) error {
			heads.Add(r) // a fresh import quarantines nothing
			if r.Pos == h.Pos() {
				seq = r.Seq
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || seq == 0 {
			return fmt.Errorf("backup: the restored ledger has no event %d for the snapshot: %v", h.Pos(), err)
		}
	}
	body, err := t.Rebase(b.snapBody, seq, heads)
	if err != nil {
		return fmt.Errorf("backup: the snapshot: %w", err)
	}
	nh := snapshot.Header{Index: h.Index, Seq: seq, Hash: h.Hash, Count: h.Count, Taken: time.Now().UTC(), EventTime: h.EventTime}
	if err := t.Snapshots.Put(ctx, nh, body, t.Writer); err != nil {
		return fmt.Errorf("backup: storing the snapshot: %w", err)
	}
	return nil
}

// verifyRestored reads the restored deployment back and checks it.
func (b *Backup) verifyRestored(ctx context.Context, t Target) (Result, error) {
	acc, err := rootsAt(b.baseOrEmpty())(b.Checkpoint.Size)
	if err != nil {
		return Result{}, fmt.Errorf("backup: %w", err)
	}
	fold, from := t.Fold, b.foldAfter()
	if b.base != nil {
		if fold, err = b.foldFromBody(b.snapBody); err != nil {
			return Result{}, fmt.Errorf("backup: %w", err)
		}
	}
	f := &folder{fold: fold}
	head, err := t.Ledger.Replay(ctx, chain.Head{}, func(r event.Record) error {
		if acc.n < b.Checkpoint.Size {
			acc.add(r.Raw)
		}
		if int64(r.Pos)+1 > from.n {
			f.add(r)
		}
		return nil
	})
	if err != nil {
		return Result{}, fmt.Errorf("backup: the restored ledger does not verify: %w", err)
	}
	f.flush()
	if want := uint64(b.Checkpoint.Size) + uint64(len(b.deletions)); head.Count != want {
		return Result{}, fmt.Errorf("backup: the restored ledger holds %d events, expected %d", head.Count, want)
	}
	if root, err := acc.rootAt(b.Checkpoint.Size); err != nil || root != b.Checkpoint.Root {
		return Result{}, errors.New("backup: the restored ledger does not rebuild the checkpoint's Merkle root")
	}
	live := fold.LiveMaterials()
	for id, want := range live {
		if want != b.commitments[id] {
			return Result{}, fmt.Errorf("backup: the restored ledger refers to material %s, which was not restored", id)
		}
		wrapped, err := t.Materials.GetChecked(ctx, id, want)
		if err != nil {
			return Result{}, fmt.Errorf("backup: reading back material %s: %w", id, err)
		}
		if material.Commitment(wrapped) != want {
			return Result{}, fmt.Errorf("backup: restored material %s does not match the ledger's commitment", id)
		}
	}
	return Result{Events: head.Count, Deletions: len(b.deletions), Materials: len(live), Head: head}, nil
}
