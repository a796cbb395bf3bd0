package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/keyledger/keyledger/crypto/durable"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/checkpoint"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/material"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/offline"
)

// The files of a backup directory.
const (
	ManifestFile    = "manifest.json"
	LedgerDir       = "ledger"
	CheckpointsFile = "checkpoints.json"
	MaterialsFile   = "materials.jsonl"
)

var (
	eventsPath     = filepath.Join(LedgerDir, offline.EventsFile)
	signaturesPath = filepath.Join(LedgerDir, offline.SignaturesFile)
	checkpointPath = filepath.Join(LedgerDir, offline.CheckpointFile)
)

// File is one file of a backup with its size and SHA-256 (hex).
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// materialLine is one line of MaterialsFile.
type materialLine struct {
	ID      string `json:"id"`
	Wrapped []byte `json:"wrapped"` // root-wrapped, base64 in JSON
}

// Fold derives which materials a ledger still refers to, with the
// commitment it recorded for each (projections/keystate.State).
type Fold interface {
	Apply(recs []event.Record)
	LiveMaterials() map[string]string
}

// MaterialReader reads root-wrapped material (material.Store).
type MaterialReader interface {
	// GetChecked returns the root-wrapped material of id from a stored
	// copy whose bytes match one of commitments; material.ErrNotFound if
	// none is stored, an error matching material.ErrUnreadable if copies
	// are stored but none opens (damage, not a deletion).
	GetChecked(ctx context.Context, id string, commitments ...string) ([]byte, error)
}

// CheckpointReader reads a deployment's stored signed checkpoints
// (checkpoint.Store, opened read-only).
type CheckpointReader interface {
	// Latest is the newest stored checkpoint (checkpoint.ErrNone if none).
	Latest(ctx context.Context) ([]byte, error)
	// Reader yields the stored checkpoints one at a time, then io.EOF.
	Reader(ctx context.Context) (func(context.Context) ([]byte, error), error)
}

// Source is the deployment a backup is taken from. A backup only reads
// it: nothing in Write creates, changes or stores anything there, so it
// runs under an identity that cannot write (README "Backups").
type Source struct {
	Stream      string
	Ledger      *ledger.Ledger   // opened read-only; need not be started
	Checkpoints CheckpointReader // nil: the deployment stores none
	Materials   MaterialReader
	Fold        Fold // empty; Write applies the events up to the cut
	// Verifier (note vkey) checks the checkpoint the cut is taken at.
	Verifier string
	// ManifestSigner is the backup signing key (manifest.go): required.
	ManifestSigner note.Signer
	// Signer, if set, is the checkpoint signing key: Write signs a
	// checkpoint covering the whole ledger when the newest stored one does
	// not, so the backup holds every event; the checkpoint goes into the
	// backup only. Without it the cut is the newest stored checkpoint,
	// and later events wait for the next backup. Origin names the log in
	// it when no checkpoint was stored before (else the stored ones'
	// origin is kept).
	Signer note.Signer
	Origin string
	// Snapshots and FoldFrom serve a ledger that starts after removed
	// (archived) segments (base.go): the stored snapshots, and a Fold
	// started from a snapshot's body (projections/resume's image), which
	// then replaces Fold.
	Snapshots SnapshotReader
	FoldFrom  func(body []byte) (Fold, error)
}

// Summary is what Write backed up.
type Summary struct {
	Events     int64
	Materials  int
	Checkpoint merkle.Checkpoint
	Last       EventInfo // the last event at the cut
	Signed     bool      // Write signed the checkpoint at the cut
	Left       int64     // events after the cut, not in this backup
	// Quarantined is how many ledger messages were left out because they
	// do not fold (see chain.Folder): an alarm `audit verify` reports.
	Quarantined int
	// After removed segments: the base's first event, and the event the
	// snapshot the state starts from covers (both 0 otherwise).
	BaseFirstIndex, SnapshotIndex uint64
}

// Write takes a backup of src into dir, which must not exist. It writes
// into a temporary sibling and renames it into place once every file is
// written and synced, so dir either holds a whole backup or nothing.
//
// The ledger is read once, message by message, folded as every reader
// folds it (chain.Folder): each message's events are written to the
// events file as they arrive and its writer signature to the signatures
// file, each event hashed for the manifest, added to a compact Merkle
// range and folded, and each stored checkpoint is copied and checked as
// the stream passes its size, so memory does not grow with the ledger's
// length or its checkpoints (only with its live state).
func Write(ctx context.Context, src Source, dir string) (Summary, error) {
	if _, err := os.Stat(dir); err == nil {
		return Summary{}, fmt.Errorf("backup: %s exists; a backup goes into a new directory", dir)
	}
	if src.ManifestSigner == nil {
		return Summary{}, errors.New("backup: no backup signing key: the manifest must be signed")
	}
	if src.Ledger.FirstIndex() > 0 && (src.Snapshots == nil || src.FoldFrom == nil) {
		return Summary{}, fmt.Errorf("backup: the ledger starts at event %d after removed (archived) segments: a backup needs its snapshots to start from", src.Ledger.FirstIndex())
	}
	tmp := dir + ".partial"
	if err := os.RemoveAll(tmp); err != nil {
		return Summary{}, err
	}
	sum, err := write(ctx, src, tmp)
	if err != nil {
		_ = os.RemoveAll(tmp)
		return Summary{}, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return Summary{}, fmt.Errorf("backup: %w", err)
	}
	return sum, durable.SyncDir(filepath.Dir(dir))
}

// ledgerPass is what one read of the ledger gathered.
type ledgerPass struct {
	n           int64 // events up to the cut limit, counted from the ledger's first (0, or the base's)
	extra       int64 // events written after the limit, completing the message it fell in
	left        int64 // events after the limit
	last        event.Record
	quarantined int
	events      File
	sigs        File
}

// foldAfter is where the fold starts: the events it already holds (a
// snapshot's) end with the event counted n, whose hash is hash; n == 0:
// it holds none.
type foldAfter struct {
	n    int64
	hash event.Hash
}

// readLedger streams the ledger's messages into the events and signatures
// files of tmp, up to limit events (and the rest of the message the limit
// falls in, so that every message in the backup is whole and its writer
// signature can be checked), adding each event up to limit to acc, folding
// those after from, and passing it to check.
func readLedger(ctx context.Context, src Source, tmp string, limit int64, acc *roots, fold *folder, from foldAfter, check *checkpointCheck) (ledgerPass, error) {
	p := ledgerPass{n: int64(src.Ledger.FirstIndex())}
	events, err := createHashed(tmp, eventsPath)
	if err != nil {
		return p, err
	}
	sigs, err := createHashed(tmp, signaturesPath)
	if err != nil {
		events.close()
		return p, err
	}
	f, err := src.Ledger.Folder()
	if err == nil {
		err = src.Ledger.Messages(ctx, func(m chain.Message) error {
			m.Data = bytes.Clone(m.Data) // the fold keeps the records
			recs, err := f.Fold(m)
			if errors.As(err, new(*chain.Quarantine)) {
				p.quarantined++
				return nil
			}
			if err != nil {
				return err
			}
			if p.n >= limit {
				p.left += int64(len(recs))
				return nil
			}
			for _, r := range recs {
				if err := events.writeLine(r.Raw); err != nil {
					return err
				}
				if p.n >= limit {
					p.extra++
					p.left++
					continue
				}
				p.n++
				acc.add(r.Raw)
				switch {
				case p.n > from.n:
					fold.add(r)
				case p.n == from.n && r.Hash != from.hash:
					return fmt.Errorf("the snapshot covers event %d with hash %s, the ledger holds %s", r.Pos, from.hash, r.Hash)
				}
				p.last = r
				if err := check.passed(acc); err != nil {
					return err
				}
			}
			line, _ := json.Marshal(offline.Signature(m, recs, len(recs)))
			return sigs.writeLine(line)
		})
	}
	var cerr, serr error
	p.events, cerr = events.close()
	p.sigs, serr = sigs.close()
	return p, errors.Join(err, cerr, serr)
}

// write writes every file of the backup into tmp.
func write(ctx context.Context, src Source, tmp string) (Summary, error) {
	latestSigned, latest, err := newest(ctx, src)
	if err != nil {
		return Summary{}, err
	}
	if latest == nil && src.Signer == nil {
		return Summary{}, errors.New("backup: no signed checkpoint to cut the backup at; give the checkpoint signing key, or wait for the server's next checkpoint")
	}
	// Without a signer the cut is the newest stored checkpoint, known now;
	// with one it is the whole ledger as read.
	limit := int64(math.MaxInt64)
	if src.Signer == nil {
		limit = latest.Size
	}
	acc, fold, from, err := startFold(ctx, src, tmp, latest, limit)
	if err != nil {
		return Summary{}, fmt.Errorf("backup: %w", err)
	}
	first := int64(src.Ledger.FirstIndex())
	// Stored checkpoints are copied into the backup as they are read (those
	// that verify and lie within the cut, and after the base if any: only
	// those can be checked against the events) and checked as the events
	// pass their sizes: none is held longer than the read-ahead.
	cps, err := createCheckpoints(tmp)
	if err != nil {
		return Summary{}, fmt.Errorf("backup: %w", err)
	}
	readStored := func(context.Context) ([]byte, error) { return nil, io.EOF }
	if src.Checkpoints != nil && latest != nil {
		if readStored, err = src.Checkpoints.Reader(ctx); err != nil {
			cps.close()
			return Summary{}, fmt.Errorf("backup: reading checkpoints: %w", err)
		}
	}
	pos := 0
	check := newCheckpointCheck(func() (storedCheckpoint, error) {
		for {
			s, err := readStored(ctx)
			if err != nil {
				return storedCheckpoint{}, err
			}
			if c, err := merkle.Open(s, src.Verifier); err == nil && c.Size <= limit && c.Size > first {
				pos++
				return storedCheckpoint{pos: pos, cp: c}, cps.add(s)
			}
		}
	})
	p, err := readLedger(ctx, src, tmp, limit, acc, fold, from, check)
	if err != nil {
		cps.close()
		return Summary{}, fmt.Errorf("backup: reading the ledger: %w", err)
	}
	fold.flush()

	sum := Summary{Quarantined: p.quarantined, BaseFirstIndex: src.Ledger.FirstIndex()}
	if from.n > 0 {
		sum.SnapshotIndex = uint64(from.n - 1)
	}
	signed, cp, err := cut(src, latestSigned, latest, p.n, acc, &sum)
	if err != nil {
		cps.close()
		return Summary{}, err
	}
	sum.Checkpoint, sum.Events, sum.Left, sum.Last = cp, cp.Size, p.left, eventInfo(p.last)
	if root, err := acc.rootAt(cp.Size); err != nil || root != cp.Root || acc.n != cp.Size {
		cps.close()
		return Summary{}, errors.New("backup: the ledger does not match its own checkpoint: the events do not rebuild the checkpoint's Merkle root")
	}
	err = check.finish(acc)
	if err == nil {
		// Checkpoints stored behind the stream: read the events again,
		// from the file just written.
		err = check.verifyLate(rootsAt(src.Ledger.Base()), func(add func([]byte)) error {
			return eachLine(filepath.Join(tmp, eventsPath), cp.Size-first, add)
		})
	}
	if err != nil {
		cps.close()
		return Summary{}, fmt.Errorf("backup: stored checkpoints do not match the ledger: %w", err)
	}
	if sum.Signed {
		err = cps.add(signed)
	}
	cpsFile, cerr := cps.close()
	if err == nil {
		err = cerr
	}
	if err != nil {
		return Summary{}, fmt.Errorf("backup: %w", err)
	}

	matsFile, err := writeMaterials(ctx, src, fold.fold, tmp, &sum)
	if err != nil {
		return Summary{}, err
	}

	m := Manifest{Format: Format, Created: time.Now().UTC(), Stream: src.Stream, Events: cp.Size,
		Materials: sum.Materials, Head: p.last.Hash.String()}
	m.Last = &struct {
		Index uint64    `json:"index"`
		Time  time.Time `json:"time"`
	}{Index: sum.Last.Index, Time: sum.Last.Time.UTC()}
	m.Checkpoint.Origin, m.Checkpoint.Size = cp.Origin, cp.Size
	m.Checkpoint.Root = base64.StdEncoding.EncodeToString(cp.Root[:])
	if err := writeSynced(filepath.Join(tmp, checkpointPath), signed); err != nil {
		return Summary{}, fmt.Errorf("backup: %w", err)
	}
	m.Files = []File{p.events, p.sigs,
		{Path: filepath.ToSlash(checkpointPath), Size: int64(len(signed)), SHA256: digest(signed)},
		cpsFile, matsFile}
	for _, name := range []string{BaseFile, SnapshotFile} {
		if data, err := os.ReadFile(filepath.Join(tmp, name)); err == nil {
			m.Files = append(m.Files, File{Path: name, Size: int64(len(data)), SHA256: digest(data)})
		}
	}
	manifest, _ := json.MarshalIndent(m, "", "  ")
	manifest = append(manifest, '\n')
	sig, err := signManifest(manifest, src.ManifestSigner)
	if err != nil {
		return Summary{}, fmt.Errorf("backup: signing the manifest: %w", err)
	}
	if err := writeSynced(filepath.Join(tmp, ManifestFile), manifest); err != nil {
		return Summary{}, fmt.Errorf("backup: %w", err)
	}
	if err := writeSynced(filepath.Join(tmp, SignatureFile), sig); err != nil {
		return Summary{}, fmt.Errorf("backup: %w", err)
	}
	return sum, nil
}

// writeMaterials writes every material the ledger at the cut refers to,
// each checked against the ledger's commitment.
func writeMaterials(ctx context.Context, src Source, fold Fold, tmp string, sum *Summary) (File, error) {
	live := fold.LiveMaterials()
	mats, err := createHashed(tmp, MaterialsFile)
	if err != nil {
		return File{}, fmt.Errorf("backup: %w", err)
	}
	for _, id := range slices.Sorted(maps.Keys(live)) {
		wrapped, err := src.Materials.GetChecked(ctx, id, live[id])
		if errors.Is(err, material.ErrNotFound) {
			mats.close()
			return File{}, missingMaterial(ctx, src, sum.Checkpoint.Size, id)
		}
		if errors.Is(err, material.ErrUnreadable) {
			mats.close()
			return File{}, fmt.Errorf("backup: %w (the deployment's damage must be repaired first; an earlier backup holds the material)", err)
		}
		if err != nil {
			mats.close()
			return File{}, fmt.Errorf("backup: %w", err)
		}
		if material.Commitment(wrapped) != live[id] {
			mats.close()
			return File{}, fmt.Errorf("backup: material %s does not match the ledger's commitment", id)
		}
		line, _ := json.Marshal(materialLine{ID: id, Wrapped: wrapped})
		if err := mats.writeLine(line); err != nil {
			mats.close()
			return File{}, fmt.Errorf("backup: %w", err)
		}
		sum.Materials++
	}
	f, err := mats.close()
	if err != nil {
		return File{}, fmt.Errorf("backup: %w", err)
	}
	return f, nil
}

// missingMaterial explains a material the ledger at the cut refers to and
// the store does not hold: destroyed by a deletion recorded after the cut
// (the ledger is read again from the cut to find it), or missing with no
// deletion recorded — lost, or a store that is not this deployment's.
func missingMaterial(ctx context.Context, src Source, cut int64, id string) error {
	var found *event.Record
	stop := errors.New("found")
	err := src.Ledger.EventsFrom(ctx, uint64(cut), func(r event.Record) error {
		var destroyed []string
		switch b := r.Event.Body.(type) {
		case *event.KeyDeleted:
			destroyed = b.DestroyedMaterials
		case *event.KeyMaterialDeleted:
			destroyed = []string{b.MaterialID}
		}
		if slices.Contains(destroyed, id) {
			found = &r
			return stop
		}
		return nil
	})
	if found != nil {
		return fmt.Errorf("backup: material %s, which the ledger at the cut refers to, was destroyed after the cut (%s, event #%d); take the backup again",
			id, found.Event.Operation, found.Pos)
	}
	if err != nil && !errors.Is(err, stop) {
		return fmt.Errorf("backup: material %s is not in the material store, and reading the ledger after the cut failed: %w", id, err)
	}
	return fmt.Errorf("backup: material %s, which the ledger at the cut refers to, is not in the material store and no deletion of it is recorded: "+
		"it is lost, or the store read is not this deployment's (a running embedded server keeps its per-material keys in its data directory)", id)
}

// startFold is where the backup's Merkle range and fold start: at the
// first event, or after removed segments at the base, from the newest
// snapshot before the cut (base.go), whose files it writes into tmp.
func startFold(ctx context.Context, src Source, tmp string, latest *merkle.Checkpoint, limit int64) (*roots, *folder, foldAfter, error) {
	b := src.Ledger.Base()
	if b.Empty() {
		return newRoots(), &folder{fold: src.Fold}, foldAfter{}, nil
	}
	acc, err := rootsFrom(b)
	if err != nil {
		return nil, nil, foldAfter{}, err
	}
	t, err := src.Ledger.TiledTree(merkle.NewMemoryStore(), 1)
	if err != nil {
		return nil, nil, foldAfter{}, err
	}
	rec := baseRecord{Base: b, Tree: t.Frontier()}
	// The snapshot is trusted for the writers a signed checkpoint names.
	var named map[string]string
	if latest != nil {
		named = latest.Writers()
	}
	if len(named) == 0 {
		named = b.Writers
	}
	raw, h, body, err := pickSnapshot(ctx, src.Snapshots, src.Stream, b, limit, trustedWriters(named))
	if err != nil {
		return nil, nil, foldAfter{}, err
	}
	fold, err := src.FoldFrom(body)
	if err != nil {
		return nil, nil, foldAfter{}, fmt.Errorf("the snapshot at event %d: %w", h.Pos(), err)
	}
	hash, _ := h.EventHash()
	if h.Pos()+1 == b.FirstIndex && hash.String() != b.Prev {
		return nil, nil, foldAfter{}, fmt.Errorf("the snapshot at event %d is not of the base's last event", h.Pos())
	}
	if err := writeSynced(filepath.Join(tmp, BaseFile), marshalBase(rec)); err != nil {
		return nil, nil, foldAfter{}, err
	}
	if err := writeSynced(filepath.Join(tmp, SnapshotFile), raw); err != nil {
		return nil, nil, foldAfter{}, err
	}
	return acc, &folder{fold: fold}, foldAfter{n: int64(h.Pos()) + 1, hash: hash}, nil
}

// newest reads the newest stored checkpoint, if any.
func newest(ctx context.Context, src Source) ([]byte, *merkle.Checkpoint, error) {
	if src.Checkpoints == nil {
		return nil, nil, nil
	}
	signed, err := src.Checkpoints.Latest(ctx)
	if errors.Is(err, checkpoint.ErrNone) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("backup: reading the newest checkpoint: %w", err)
	}
	cp, err := merkle.Open(signed, src.Verifier)
	if err != nil {
		return nil, nil, fmt.Errorf("backup: the newest stored checkpoint does not verify with the verifier key: %w", err)
	}
	return signed, &cp, nil
}

// cut picks the signed checkpoint the backup ends at, n events having been
// read: a new one over all of them when src can sign (kept in the backup
// only: a backup writes nothing into the deployment), else the newest
// stored one.
func cut(src Source, latestSigned []byte, latest *merkle.Checkpoint, n int64, acc *roots, sum *Summary) ([]byte, merkle.Checkpoint, error) {
	origin := src.Origin
	if latest != nil {
		if latest.Size > n {
			return nil, merkle.Checkpoint{}, fmt.Errorf("backup: the newest checkpoint covers %d events but the ledger holds %d", latest.Size, n)
		}
		if latest.Size == n || src.Signer == nil {
			return latestSigned, *latest, nil
		}
		origin = latest.Origin // the log keeps its name
	}
	if n == 0 {
		return nil, merkle.Checkpoint{}, errors.New("backup: the ledger is empty")
	}
	root, err := acc.rootAt(n)
	if err != nil {
		return nil, merkle.Checkpoint{}, fmt.Errorf("backup: %w", err)
	}
	cp := merkle.Checkpoint{Origin: origin, Size: n, Root: root}
	signed, err := merkle.Sign(cp, src.Signer)
	if err != nil {
		return nil, merkle.Checkpoint{}, fmt.Errorf("backup: signing a checkpoint: %w", err)
	}
	if _, err := merkle.Open(signed, src.Verifier); err != nil {
		return nil, merkle.Checkpoint{}, errors.New("backup: the checkpoint signing key does not match the verifier key")
	}
	sum.Signed = true
	return signed, cp, nil
}

func digest(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// writeSynced writes a file (mode 0600, directories 0700) and fsyncs it.
func writeSynced(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return durable.SyncDir(filepath.Dir(path))
}
