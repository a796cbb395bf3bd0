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
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/material"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/offline"
)

// Format names this layout in the manifest.
const Format = "keyledger-backup/1"

// The files of a backup directory.
const (
	ManifestFile    = "manifest.json"
	LedgerDir       = "ledger"
	CheckpointsFile = "checkpoints.json"
	MaterialsFile   = "materials.jsonl"
)

var (
	eventsPath     = filepath.Join(LedgerDir, offline.EventsFile)
	checkpointPath = filepath.Join(LedgerDir, offline.CheckpointFile)
)

// Manifest describes a backup: where its cut is and every file's digest.
type Manifest struct {
	Format     string    `json:"format"`
	Created    time.Time `json:"created"`
	Stream     string    `json:"stream"`
	Events     int64     `json:"events"`
	Head       string    `json:"head"` // hash of the last event
	Checkpoint struct {
		Origin string `json:"origin"`
		Size   int64  `json:"size"`
		Root   string `json:"root"` // base64, as in the note
	} `json:"checkpoint"`
	Materials int    `json:"materials"`
	Files     []File `json:"files"`
}

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
	Get(ctx context.Context, id string) ([]byte, error)
}

// Source is the deployment a backup is taken from.
type Source struct {
	Stream      string
	Ledger      *ledger.Ledger // opened; need not be started
	Checkpoints *ledger.Checkpoints
	Materials   MaterialReader
	Fold        Fold // empty; Write applies the events up to the cut
	// Verifier (note vkey) checks the checkpoint the cut is taken at.
	Verifier string
	// Signer, if set, signs (and stores) a checkpoint covering the whole
	// ledger when the newest stored one does not, so the backup holds every
	// event. Without it the cut is the newest stored checkpoint, and later
	// events wait for the next backup. Origin names the log in it when no
	// checkpoint was stored before (else the stored ones' origin is kept).
	Signer note.Signer
	Origin string
}

// Summary is what Write backed up.
type Summary struct {
	Events     int64
	Materials  int
	Checkpoint merkle.Checkpoint
	Signed     bool  // Write signed the checkpoint at the cut
	Left       int64 // events after the cut, not in this backup
}

// Write takes a backup of src into dir, which must not exist. It writes
// into a temporary sibling and renames it into place once every file is
// written and synced, so dir either holds a whole backup or nothing.
func Write(ctx context.Context, src Source, dir string) (Summary, error) {
	if _, err := os.Stat(dir); err == nil {
		return Summary{}, fmt.Errorf("backup: %s exists; a backup goes into a new directory", dir)
	}
	if b := src.Ledger.Base(); !b.Empty() {
		// Restore imports from the first event; the live part alone would
		// be a backup that silently lacks the removed segments.
		return Summary{}, fmt.Errorf("backup: the ledger starts at event %d after removed (archived) segments; backing it up is not supported yet", b.FirstIndex)
	}
	var events [][]byte
	if _, err := src.Ledger.Replay(ctx, chain.Head{}, func(r event.Record) error {
		events = append(events, bytes.Clone(r.Raw))
		return nil
	}); err != nil {
		return Summary{}, fmt.Errorf("backup: reading the ledger: %w", err)
	}
	var sum Summary
	signed, cp, err := cut(ctx, src, events, &sum)
	if err != nil {
		return Summary{}, err
	}
	sum.Checkpoint, sum.Events, sum.Left = cp, cp.Size, int64(len(events))-cp.Size
	events = events[:cp.Size]
	tree, err := checkTree(events, cp)
	if err != nil {
		return Summary{}, fmt.Errorf("backup: the ledger does not match its own checkpoint: %w", err)
	}
	all, err := src.Checkpoints.All(ctx)
	if err != nil {
		return Summary{}, fmt.Errorf("backup: reading checkpoints: %w", err)
	}
	var checkpoints [][]byte
	for _, s := range all {
		if c, err := merkle.Open(s, src.Verifier); err == nil && c.Size <= cp.Size {
			checkpoints = append(checkpoints, s)
		}
	}
	if _, err := merkle.VerifyCheckpoints(checkpoints, src.Verifier, tree.Root); err != nil {
		return Summary{}, fmt.Errorf("backup: stored checkpoints do not match the ledger: %w", err)
	}
	recs, err := decode(events)
	if err != nil {
		return Summary{}, err
	}
	src.Fold.Apply(recs)
	live := src.Fold.LiveMaterials()
	var mats bytes.Buffer
	for _, id := range slices.Sorted(maps.Keys(live)) {
		wrapped, err := src.Materials.Get(ctx, id)
		if errors.Is(err, material.ErrNotFound) {
			return Summary{}, fmt.Errorf("backup: material %s is gone though the ledger at the cut refers to it (its deletion fell due after the cut); take the backup again", id)
		}
		if err != nil {
			return Summary{}, fmt.Errorf("backup: %w", err)
		}
		if material.Commitment(wrapped) != live[id] {
			return Summary{}, fmt.Errorf("backup: material %s does not match the ledger's commitment", id)
		}
		line, _ := json.Marshal(materialLine{ID: id, Wrapped: wrapped})
		mats.Write(append(line, '\n'))
		sum.Materials++
	}
	cps, _ := json.Marshal(checkpoints)

	m := Manifest{Format: Format, Created: time.Now().UTC(), Stream: src.Stream, Events: cp.Size,
		Materials: sum.Materials}
	if cp.Size > 0 {
		m.Head = event.Of(events[cp.Size-1]).String()
	}
	m.Checkpoint.Origin, m.Checkpoint.Size = cp.Origin, cp.Size
	m.Checkpoint.Root = base64.StdEncoding.EncodeToString(cp.Root[:])
	files := []struct {
		path string
		data []byte
	}{
		{eventsPath, joinLines(events)},
		{checkpointPath, signed},
		{CheckpointsFile, cps},
		{MaterialsFile, mats.Bytes()},
	}
	for _, f := range files {
		m.Files = append(m.Files, File{Path: filepath.ToSlash(f.path), Size: int64(len(f.data)), SHA256: digest(f.data)})
	}
	manifest, _ := json.MarshalIndent(m, "", "  ")
	files = append(files, struct {
		path string
		data []byte
	}{ManifestFile, append(manifest, '\n')})
	tmp := dir + ".partial"
	if err := os.RemoveAll(tmp); err != nil {
		return Summary{}, err
	}
	for _, f := range files {
		if err := writeSynced(filepath.Join(tmp, f.path), f.data); err != nil {
			return Summary{}, fmt.Errorf("backup: %w", err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return Summary{}, fmt.Errorf("backup: %w", err)
	}
	return sum, syncDir(filepath.Dir(dir))
}

// cut picks the signed checkpoint the backup ends at: a new one over all
// events when src can sign, else the newest stored one.
func cut(ctx context.Context, src Source, events [][]byte, sum *Summary) ([]byte, merkle.Checkpoint, error) {
	n := int64(len(events))
	latest, err := src.Checkpoints.Latest(ctx)
	if err != nil && !errors.Is(err, ledger.ErrNoCheckpoint) {
		return nil, merkle.Checkpoint{}, fmt.Errorf("backup: reading the newest checkpoint: %w", err)
	}
	origin := src.Origin
	if latest != nil {
		cp, err := merkle.Open(latest, src.Verifier)
		if err != nil {
			return nil, merkle.Checkpoint{}, fmt.Errorf("backup: the newest stored checkpoint does not verify with the verifier key: %w", err)
		}
		if cp.Size == n || (src.Signer == nil && cp.Size < n) {
			return latest, cp, nil
		}
		if cp.Size > n {
			return nil, merkle.Checkpoint{}, fmt.Errorf("backup: the newest checkpoint covers %d events but the ledger holds %d", cp.Size, n)
		}
		origin = cp.Origin // the log keeps its name
	}
	if src.Signer == nil {
		return nil, merkle.Checkpoint{}, errors.New("backup: no signed checkpoint to cut the backup at; give the checkpoint signing key, or wait for the server's next checkpoint")
	}
	if n == 0 {
		return nil, merkle.Checkpoint{}, errors.New("backup: the ledger is empty")
	}
	var tree merkle.Tree
	for _, raw := range events {
		if err := tree.Append(raw); err != nil {
			return nil, merkle.Checkpoint{}, fmt.Errorf("backup: %w", err)
		}
	}
	root, err := tree.Root(n)
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
	if err := src.Checkpoints.Put(ctx, signed); err != nil {
		return nil, merkle.Checkpoint{}, fmt.Errorf("backup: storing the checkpoint: %w", err)
	}
	sum.Signed = true
	return signed, cp, nil
}

// checkTree rebuilds the Merkle tree over events and checks it against cp.
func checkTree(events [][]byte, cp merkle.Checkpoint) (*merkle.Tree, error) {
	tree := &merkle.Tree{}
	for _, raw := range events {
		if err := tree.Append(raw); err != nil {
			return nil, err
		}
	}
	if int64(len(events)) != cp.Size {
		return nil, fmt.Errorf("%d events, the checkpoint covers %d", len(events), cp.Size)
	}
	if root, err := tree.Root(cp.Size); err != nil || root != cp.Root {
		return nil, errors.New("the events do not rebuild the checkpoint's Merkle root")
	}
	return tree, nil
}

// decode turns chain-ordered event bytes into records.
func decode(events [][]byte) ([]event.Record, error) {
	recs := make([]event.Record, 0, len(events))
	for i, raw := range events {
		ev, err := event.Decode(raw)
		if err != nil {
			return nil, fmt.Errorf("backup: event %d: %w", i, err)
		}
		recs = append(recs, event.Record{Event: ev, Raw: raw, Hash: event.Of(raw)})
	}
	return recs, nil
}

func joinLines(lines [][]byte) []byte {
	var b bytes.Buffer
	for _, l := range lines {
		b.Write(l)
		b.WriteByte('\n')
	}
	return b.Bytes()
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
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
