// Package resume keeps an instance's projections together (key state,
// compliance aggregates, the Merkle tree and the position in the ledger)
// and encodes them as one snapshot image, so an instance restarts from the
// newest snapshot and folds only the ledger's tail: start-up costs what
// the live state and the tail cost, not what the whole history does.
//
// A snapshot only saves time; the ledger stays the truth. An Image is a
// pure function of the events folded into it, and restoring it then
// folding the rest gives exactly the state folding everything gives; the
// tests compare the two.
//
// Projections is safe for concurrent use: Apply and Capture serialize on
// one lock, so a captured image is a consistent cut at one event.
package resume

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/writer"
	"github.com/keyledger/keyledger/projections/compliance"
	"github.com/keyledger/keyledger/projections/keystate"
)

// Tree is the Merkle tree over the ledger's events, kept by Apply.
type Tree interface {
	Append(raw []byte) error
	Size() int64
	Root(size int64) (tlog.Hash, error)
}

// FrontierTree is a tree whose full tiles are durable elsewhere, so that
// its size and right edge (merkle.Frontier) are all a snapshot needs to
// restore it. A Tree without it is rebuilt from the ledger's event bytes
// under the snapshot, and checked against the image's root.
type FrontierTree interface {
	Tree
	Frontier() merkle.Frontier
}

// Image is one snapshot of every projection.
type Image struct {
	Head chain.Head `json:"head"` // the last event folded; Count: events on every chain
	// Chains is every chain's head (absent in snapshots taken before
	// chains existed, when the legacy chain ended at Head).
	Chains  map[string]chain.ChainHead `json:"chains,omitempty"`
	Time    time.Time                  `json:"time"`    // the last event's time
	Latest  time.Time                  `json:"latest"`  // the latest time of any event folded in (time travel)
	Writers map[string]string          `json:"writers"` // registered and not revoked by then: ID → public key (base64)
	// Revoked is every writer revoked by then (absent in snapshots taken
	// before revocation existed: none was).
	Revoked     map[string]chain.Revocation `json:"revoked,omitempty"`
	Quarantined []uint64                    `json:"quarantined,omitempty"`
	// QuarantinedChains is the chain of each quarantined message.
	QuarantinedChains map[uint64]string             `json:"quarantinedChains,omitempty"`
	FeedNext          uint64                        `json:"feedNext"` // the position the audit feed announces next
	Keys              keystate.Snapshot             `json:"keys"`
	Compliance        compliance.AggregatesSnapshot `json:"compliance"`
	Merkle            Merkle                        `json:"merkle"`
}

// Merkle is the tree's size, root and (from a FrontierTree) right edge:
// for each tile level, the hashes of its partial tile (at most 255, 8 KiB),
// from which the root and every complete-subtree hash of the frontier
// follow. The snapshot is stored only once every full tile under the edge
// is durable (the snapshotter flushes the tree first), so the edge and the
// stored tiles restore the tree without reading an event. Older snapshots
// have no edge: the tree is rebuilt from the events.
type Merkle struct {
	Size int64     `json:"size"`
	Root tlog.Hash `json:"root"`
	Edge [][]byte  `json:"edge,omitempty"`
}

// Frontier is the image's tree frontier; ok is false for an image without
// an edge.
func (m Merkle) Frontier() (f merkle.Frontier, ok bool) {
	if len(m.Edge) == 0 {
		return merkle.Frontier{}, false
	}
	return merkle.Frontier{Size: m.Size, Edge: m.Edge}, true
}

// Encode is the image's stored form.
func (im *Image) Encode() ([]byte, error) { return json.Marshal(im) }

// Decode reads a stored image.
func Decode(b []byte) (*Image, error) {
	var im Image
	if err := json.Unmarshal(b, &im); err != nil {
		return nil, fmt.Errorf("resume: image: %w", err)
	}
	return &im, nil
}

// WriterKeys parses the image's writers.
func (im *Image) WriterKeys() (map[string]ed25519.PublicKey, error) {
	out := make(map[string]ed25519.PublicKey, len(im.Writers))
	for id, text := range im.Writers {
		pub, err := writer.ParsePublic(text)
		if err != nil || writer.ID(pub) != id {
			return nil, errors.New("resume: image names a malformed writer key")
		}
		out[id] = pub
	}
	return out, nil
}

// Projections are an instance's live projections.
type Projections struct {
	State *keystate.State
	Agg   *compliance.Aggregates
	Tree  Tree

	mu      sync.Mutex
	head    chain.Head
	chains  chain.Heads
	time    time.Time
	latest  time.Time
	writers map[string]ed25519.PublicKey
	revoked map[string]chain.Revocation
	onTree  func(error)
}

// New returns empty projections over tree.
func New(tree Tree, onTreeError func(error)) *Projections {
	return &Projections{State: keystate.New(), Agg: compliance.NewAggregates(), Tree: tree, chains: chain.Heads{},
		writers: map[string]ed25519.PublicKey{}, onTree: onTreeError}
}

// Restore continues projections from an image; tree must already hold the
// image's events (RestoreTree).
func Restore(im *Image, tree Tree, onTreeError func(error)) (*Projections, error) {
	w, err := im.WriterKeys()
	if err != nil {
		return nil, err
	}
	chains := chain.Heads(im.Chains).Clone()
	if im.Chains == nil {
		chains = chain.Heads{}
		if !im.Head.Empty() {
			h := im.Head
			chains[chain.Legacy] = chain.ChainHead{Seq: h.Seq, Index: h.Index, Hash: h.Hash, Count: h.Count, Last: h.Seq}
		}
	}
	return &Projections{State: keystate.Restore(im.Keys), Agg: compliance.RestoreAggregates(im.Compliance), Tree: tree,
		head: im.Head, chains: chains, time: im.Time, latest: im.Latest, writers: w, revoked: maps.Clone(im.Revoked), onTree: onTreeError}, nil
}

// Apply folds committed records (in order) into every projection.
func (p *Projections) Apply(recs []event.Record) {
	if len(recs) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.State.Apply(recs)
	p.Agg.Apply(recs)
	for _, r := range recs {
		if err := p.Tree.Append(r.Raw); err != nil && p.onTree != nil {
			p.onTree(err)
		}
		if r.Event.Time.After(p.latest) {
			p.latest = r.Event.Time // clocks of several writers need not agree
		}
		p.chains.Add(r)
	}
	last := recs[len(recs)-1]
	p.head = chain.Head{Seq: last.Seq, Index: last.Event.Index, Hash: last.Hash, Count: p.head.Count + uint64(len(recs)), Chain: last.Event.Chain}
	p.time = last.Event.Time
	p.writers, p.revoked = chain.Register(p.writers, p.revoked, recs)
}

// Head is the last event folded.
func (p *Projections) Head() chain.Head {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.head
}

// Capture takes a consistent image; quarantined names the chains of the
// messages quarantined at or before a stream sequence. It holds the fold
// for the time it takes to copy the state (not to encode or store it).
func (p *Projections) Capture(quarantined func(seq uint64) map[uint64]string) (*Image, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	im := &Image{Head: p.head, Chains: p.chains.Clone(), Time: p.time, Latest: p.latest, Writers: map[string]string{}, FeedNext: p.head.Count,
		Keys: p.State.Snapshot(), Compliance: p.Agg.Snapshot()}
	if q := quarantined(p.head.Seq); len(q) > 0 {
		im.QuarantinedChains = q
		for seq := range q {
			im.Quarantined = append(im.Quarantined, seq)
		}
		slices.Sort(im.Quarantined)
	}
	for id, pub := range p.writers {
		im.Writers[id] = base64.StdEncoding.EncodeToString(pub)
	}
	if len(p.revoked) > 0 {
		im.Revoked = maps.Clone(p.revoked)
	}
	size := p.Tree.Size()
	root, err := p.Tree.Root(size)
	if err != nil {
		return nil, err
	}
	im.Merkle = Merkle{Size: size, Root: root}
	if ft, ok := p.Tree.(FrontierTree); ok {
		f := ft.Frontier()
		if f.Size != size {
			return nil, errors.New("resume: the Merkle tree changed during a capture")
		}
		im.Merkle.Edge = f.Edge
	}
	return im, nil
}

// ErrTreeMismatch means the rebuilt tree does not have the image's root.
var ErrTreeMismatch = errors.New("resume: the Merkle tree under the snapshot does not match its root")

// RestoreTree brings an empty tree to the image's events by appending the
// ledger's event bytes under the snapshot (leaves walks them), then checks
// it (CheckTree).
func RestoreTree(im *Image, tree Tree, leaves func(fn func(raw []byte) error) error) error {
	if err := leaves(tree.Append); err != nil {
		return err
	}
	return CheckTree(im, tree)
}

// CheckTree checks that tree holds exactly the image's events: its size
// and its root.
func CheckTree(im *Image, tree Tree) error {
	if tree.Size() != im.Merkle.Size || uint64(im.Merkle.Size) != im.Head.Count {
		return ErrTreeMismatch
	}
	root, err := tree.Root(im.Merkle.Size)
	if err != nil || root != im.Merkle.Root {
		return ErrTreeMismatch
	}
	return nil
}
