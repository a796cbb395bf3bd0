package segment

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/offline"
)

// Format names the archive layout.
const Format = "keyledger-archive/1"

// The files of an archive directory besides offline's EventsFile,
// SignaturesFile and CheckpointFile.
const (
	ManifestFile = "archive.json"
	ProofFile    = "consistency.proof"
	// BaseFile, in an export of a ledger that starts after a removed
	// segment, holds the live ledger's Base (JSON).
	BaseFile = "base.json"
)

// Manifest describes an archive.
type Manifest struct {
	Format string `json:"format"`
	Ledger string `json:"ledger"` // the ledger stream's name
	Base   Base   `json:"base"`   // where the archived events start
	Next   Base   `json:"next"`   // where the ledger continues after them
	// Before is the --before the archive was cut at: every archived
	// message's events are older; LastTime is the newest archived event's.
	Before       time.Time `json:"before"`
	FirstTime    time.Time `json:"firstTime"`
	LastTime     time.Time `json:"lastTime"`
	EventsSHA256 string    `json:"eventsSha256"`
}

// Events is how many events the archive holds.
func (m Manifest) Events() uint64 { return m.Next.FirstIndex - m.Base.FirstIndex }

// Contents is what Write stores: the manifest's fields the archive cannot
// compute itself, the files' contents, the signed checkpoint (size M ≥
// Next.FirstIndex) and the consistency proof from Next.FirstIndex to M.
type Contents struct {
	Manifest   Manifest
	Events     []byte // EventsFile
	Signatures []byte // SignaturesFile
	Checkpoint []byte
	Proof      tlog.TreeProof
}

// Write creates dir (which must not exist, so an archive is never
// overwritten) and writes the archive into it, each file fsynced.
func Write(dir string, c Contents) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("segment: %w", err)
	}
	c.Manifest.Format = Format
	sum := sha256.Sum256(c.Events)
	c.Manifest.EventsSHA256 = hex.EncodeToString(sum[:])
	man, err := json.MarshalIndent(c.Manifest, "", "  ")
	if err != nil {
		return err
	}
	var proof strings.Builder
	for _, h := range c.Proof {
		proof.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
	}
	for name, data := range map[string][]byte{
		offline.EventsFile: c.Events, offline.SignaturesFile: c.Signatures, offline.CheckpointFile: c.Checkpoint,
		ProofFile: []byte(proof.String()), ManifestFile: append(man, '\n'),
	} {
		if err := writeSynced(filepath.Join(dir, name), data); err != nil {
			return err
		}
	}
	return nil
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Span is a verified run of events continuing a base.
type Span struct {
	Base, Next  Base
	Tree        *merkle.MemTree // continued from Base through every event of the span
	First, Last time.Time       // the first and last event's time (zero when empty)
}

// VerifySpan checks events (EventsFile's contents) and their writer
// signatures as the continuation of base: every link, every message's
// signature by a writer registered by then, and rebuilds the Merkle tree.
func VerifySpan(base Base, events, signatures []byte) (Span, error) {
	head, err := base.Head()
	if err != nil {
		return Span{}, err
	}
	tree, err := base.Tree()
	if err != nil {
		return Span{}, err
	}
	f, err := base.Folder()
	if err != nil {
		return Span{}, err
	}
	wr, err := offline.VerifyWritersFrom(f, events, signatures)
	if err != nil {
		return Span{}, err
	}
	s := Span{Base: base, Tree: tree}
	var lines [][]byte
	if len(events) > 0 {
		lines = bytes.Split(bytes.TrimSuffix(events, []byte("\n")), []byte("\n"))
	}
	links := chain.NewLinks(base.heads(head))
	var end chain.Head
	for i, raw := range lines {
		h, err := links.Link(uint64(i+1), raw)
		if err != nil {
			var bl *chain.BrokenLinkError
			if errors.As(err, &bl) {
				return Span{}, &offline.LinkError{Line: i + 1, Link: bl}
			}
			return Span{}, fmt.Errorf("line %d: %w", i+1, err)
		}
		if err := tree.Append(raw); err != nil {
			return Span{}, fmt.Errorf("line %d: %w", i+1, err)
		}
		end.Hash = h
		if i == 0 || i == len(lines)-1 {
			ev, err := event.Decode(raw)
			if err != nil {
				return Span{}, fmt.Errorf("line %d: %w", i+1, err)
			}
			if i == 0 {
				s.First = ev.Time
			}
			s.Last = ev.Time
		}
	}
	seq := base.Seq
	if len(lines) > 0 {
		seq = lastSeq(signatures)
	}
	var chains map[string]chain.ChainHead
	if base.Chains != nil || !onlyLegacy(f.Chains()) {
		chains = f.Chains()
	}
	if s.Next, err = At(tree, base.FirstIndex+uint64(len(lines)), end.Hash, wr.Writers, seq, chains); err != nil {
		return Span{}, err
	}
	s.Next = s.Next.WithRevoked(wr.Revoked)
	if len(lines) == 0 {
		s.Next = base
	}
	return s, nil
}

// onlyLegacy reports whether chains are the legacy chain alone (a base of
// such a ledger records no chains, as before chains existed).
func onlyLegacy(chains map[string]chain.ChainHead) bool {
	for name := range chains {
		if name != chain.Legacy {
			return false
		}
	}
	return true
}

// lastSeq is the stream sequence of the last message in a SignaturesFile.
func lastSeq(signatures []byte) uint64 {
	lines := bytes.Split(bytes.TrimSuffix(signatures, []byte("\n")), []byte("\n"))
	var ms offline.MessageSignature
	json.Unmarshal(lines[len(lines)-1], &ms)
	return ms.Seq
}

// Archive is a verified archive.
type Archive struct {
	Dir        string
	Manifest   Manifest
	Checkpoint merkle.Checkpoint
	Span       Span
}

// Open reads and verifies the archive in dir with the checkpoint verifier
// key (note vkey): its events and signatures continue its base, rebuild its
// next base exactly, match its digest, and the tree of its events is a
// prefix of the signed checkpoint's (the consistency proof). Any error
// means the archive does not verify.
func Open(dir, vkey string) (Archive, error) {
	read := func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, name)) }
	manRaw, err := read(ManifestFile)
	if err != nil {
		return Archive{}, err
	}
	var m Manifest
	if err := json.Unmarshal(manRaw, &m); err != nil || m.Format != Format {
		return Archive{}, fmt.Errorf("segment: %s: not a %s manifest", ManifestFile, Format)
	}
	signed, err := read(offline.CheckpointFile)
	if err != nil {
		return Archive{}, err
	}
	cp, err := merkle.Open(signed, vkey)
	if err != nil {
		return Archive{}, &offline.SignatureError{Err: err}
	}
	events, err := read(offline.EventsFile)
	if err != nil {
		return Archive{}, err
	}
	if sum := sha256.Sum256(events); hex.EncodeToString(sum[:]) != m.EventsSHA256 {
		return Archive{}, fmt.Errorf("segment: %s does not match the manifest's digest", offline.EventsFile)
	}
	sigs, err := read(offline.SignaturesFile)
	if err != nil {
		return Archive{}, err
	}
	span, err := VerifySpan(m.Base, events, sigs)
	if err != nil {
		return Archive{}, err
	}
	if !span.Next.Equal(m.Next) {
		return Archive{}, errors.New("segment: the archived events do not end where the manifest says (an event dropped, added or changed)")
	}
	if span.First.IsZero() || !span.Last.Before(m.Before) || !span.Last.Equal(m.LastTime) {
		return Archive{}, errors.New("segment: the archive is empty or holds events not before its cut")
	}
	n := int64(m.Next.FirstIndex)
	root, err := span.Tree.Root(n)
	if err != nil {
		return Archive{}, err
	}
	proofRaw, err := read(ProofFile)
	if err != nil {
		return Archive{}, err
	}
	var proof tlog.TreeProof
	for _, line := range strings.Fields(string(proofRaw)) {
		var h tlog.Hash
		if b, err := base64.StdEncoding.DecodeString(line); err != nil || len(b) != len(h) {
			return Archive{}, fmt.Errorf("segment: malformed %s", ProofFile)
		} else {
			copy(h[:], b)
		}
		proof = append(proof, h)
	}
	if cp.Size < n {
		return Archive{}, fmt.Errorf("segment: the signed checkpoint (size %d) does not cover the archive (%d events)", cp.Size, n)
	}
	if err := tlog.CheckTree(proof, cp.Size, cp.Root, n, root); err != nil {
		return Archive{}, fmt.Errorf("segment: the archived events are not a prefix of the signed tree (size %d): %v", cp.Size, err)
	}
	return Archive{Dir: dir, Manifest: m, Checkpoint: cp, Span: span}, nil
}

// OpenAll verifies archives in order: the first starts the ledger, each
// next one continues the one before.
func OpenAll(dirs []string, vkey string) ([]Archive, error) {
	var out []Archive
	for i, dir := range dirs {
		a, err := Open(dir, vkey)
		if err != nil {
			return nil, fmt.Errorf("archive %s: %w", dir, err)
		}
		switch {
		case i == 0 && !a.Manifest.Base.Empty():
			return nil, fmt.Errorf("archive %s starts at event %d: give the archives before it too", dir, a.Manifest.Base.FirstIndex)
		case i > 0 && !a.Manifest.Base.Equal(out[i-1].Manifest.Next):
			return nil, fmt.Errorf("archive %s does not continue archive %s", dir, out[i-1].Dir)
		}
		out = append(out, a)
	}
	return out, nil
}

// Joined is what VerifyJoined established.
type Joined struct {
	Archived   uint64            // events in the archives
	Live       uint64            // events in the live export
	Checkpoint merkle.Checkpoint // the live export's signed checkpoint
}

// VerifyJoined checks a live export directory (events, signatures, signed
// checkpoint) as the continuation of the archives (verified by OpenAll):
// its first event links to the last archived one, its writers are
// authenticated with the writers registered in the archives, the tree
// continued from the archives' frontier rebuilds the live signed root,
// and every archive's own signed checkpoint that the live tree reaches
// has the live tree's root at its size (one tree, not two).
func VerifyJoined(archives []Archive, liveDir, vkey string) (Joined, error) {
	base := Base{}
	overlap := false
	var archived uint64
	if len(archives) > 0 {
		base = archives[len(archives)-1].Manifest.Next
		archived = base.FirstIndex
	}
	read := func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(liveDir, name)) }
	raw, err := read(BaseFile)
	switch {
	case err == nil:
		var live Base
		if err := json.Unmarshal(raw, &live); err != nil {
			return Joined{}, fmt.Errorf("segment: malformed %s", BaseFile)
		}
		if !live.Equal(base) {
			return Joined{}, fmt.Errorf("the export starts at event %d, the archives end at event %d (or their state differs): they do not join",
				live.FirstIndex, base.FirstIndex)
		}
	case errors.Is(err, os.ErrNotExist):
		// An export of the whole ledger (taken before the removal): it
		// must hold the archived events themselves, checked below.
		overlap, base = !base.Empty(), Base{}
	default:
		return Joined{}, err
	}
	signed, err := read(offline.CheckpointFile)
	if err != nil {
		return Joined{}, err
	}
	cp, err := merkle.Open(signed, vkey)
	if err != nil {
		return Joined{}, &offline.SignatureError{Err: err}
	}
	events, err := read(offline.EventsFile)
	if err != nil {
		return Joined{}, err
	}
	sigs, err := read(offline.SignaturesFile)
	if err != nil {
		return Joined{}, err
	}
	span, err := VerifySpan(base, events, sigs)
	if err != nil {
		return Joined{}, err
	}
	size := span.Tree.Size()
	if cp.Size < int64(base.FirstIndex) || cp.Size > size {
		return Joined{}, fmt.Errorf("the signed checkpoint (size %d) is outside the archived and live events (%d–%d)", cp.Size, base.FirstIndex, size)
	}
	if root, err := span.Tree.Root(cp.Size); err != nil || root != cp.Root {
		return Joined{}, fmt.Errorf("the archived and live events do not rebuild the signed checkpoint's root (size %d)", cp.Size)
	}
	if overlap {
		last := archives[len(archives)-1].Span.Tree
		n := int64(archived)
		want, _ := last.Root(n)
		if got, err := span.Tree.Root(n); err != nil || got != want {
			return Joined{}, fmt.Errorf("the export's first %d events are not the archived ones", n)
		}
	}
	for _, a := range archives {
		if s := a.Checkpoint.Size; s >= int64(base.FirstIndex) && s <= size {
			if root, err := span.Tree.Root(s); err != nil || root != a.Checkpoint.Root {
				return Joined{}, fmt.Errorf("archive %s: its signed checkpoint (size %d) is not the live tree's", a.Dir, s)
			}
		}
	}
	return Joined{Archived: archived, Live: uint64(size) - archived, Checkpoint: cp}, nil
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
