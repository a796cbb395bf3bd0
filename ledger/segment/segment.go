// Package segment is the ledger's retention and archival: an archived
// prefix of the ledger (a segment, events [first, N)) is written to a
// self-verifying archive directory, and once removed from the deployment
// the live ledger starts at a Base, event N, whose predecessor is the
// archive's last event.
//
// A Base is all a reader needs to continue the ledger without its removed
// prefix: the first index, the hash of the event before it (the chain
// link), the Merkle frontier at it (the hashes of the maximal complete
// subtrees of the first N leaves, enough to continue the RFC 6962 tree so
// roots and proofs for indexes ≥ N still work) and the writers registered
// by then. A Base is never trusted on its own: an archive proves it (its
// events rebuild it from the previous base, a signed checkpoint and a
// consistency proof bind it to the live tree), and the live ledger records
// its removal as a SegmentRemoved event.
//
// An archive directory holds:
//
//	archive.json       the Manifest: base, next base, times, events digest
//	events.jsonl       the events' exact stored bytes, one a line
//	signatures.jsonl   the writer signature of every message they came from
//	checkpoint         a signed checkpoint of size M ≥ N
//	consistency.proof  the proof (base64 hashes, one a line) that the tree
//	                   of the first N events is a prefix of the one of size M
//
// The package holds no state and is safe for concurrent use.
package segment

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/writer"
)

// Base is where a ledger, or an archived segment, starts.
type Base struct {
	FirstIndex uint64            `json:"firstIndex"`
	Prev       string            `json:"prev,omitempty"`     // hex hash of event FirstIndex-1
	Frontier   []string          `json:"frontier,omitempty"` // base64 hashes of merkle.FrontierNodes(FirstIndex)
	Writers    map[string]string `json:"writers,omitempty"`  // registered by then: ID → base64 public key
	// Seq is the last stream sequence before the base (removed with the
	// segment); zero for a ledger that starts at its first message.
	Seq uint64 `json:"seq,omitempty"`
	// Chains is every chain's head at the base (package chain); absent for
	// a ledger that had only the legacy chain then, which ends at Prev.
	Chains map[string]chain.ChainHead `json:"chains,omitempty"`
	// Revoked is every writer revoked before the base (absent when none
	// was): a fold from the base keeps refusing their messages and their
	// re-registration. Writers never names them.
	Revoked map[string]chain.Revocation `json:"revoked,omitempty"`
}

// WithRevoked is b naming the writers revoked by then (none: no member,
// as in bases from before revocation): a fold from the base keeps refusing
// their messages and their re-registration. Every writer of a base is
// recorded this way, so the archive's and the verifier's bases compare.
func (b Base) WithRevoked(revoked map[string]chain.Revocation) Base {
	b.Revoked = nil
	if len(revoked) > 0 {
		b.Revoked = maps.Clone(revoked)
	}
	return b
}

// Empty reports whether the base is the ledger's very beginning.
func (b Base) Empty() bool { return b.FirstIndex == 0 }

// Equal reports whether two bases name the same place with the same state.
func (b Base) Equal(o Base) bool {
	return b.FirstIndex == o.FirstIndex && b.Prev == o.Prev && b.Seq == o.Seq &&
		fmt.Sprint(b.Frontier) == fmt.Sprint(o.Frontier) && maps.Equal(b.Writers, o.Writers) && maps.Equal(b.Chains, o.Chains) &&
		maps.Equal(b.Revoked, o.Revoked)
}

// Head is the chain position before the base's first event.
func (b Base) Head() (chain.Head, error) {
	if b.Empty() {
		return chain.Head{}, nil
	}
	var h event.Hash
	raw, err := hex.DecodeString(b.Prev)
	if err != nil || len(raw) != len(h) {
		return chain.Head{}, errors.New("segment: malformed base: previous hash")
	}
	copy(h[:], raw)
	return chain.Head{Seq: b.Seq, Index: b.FirstIndex - 1, Hash: h, Count: b.FirstIndex}, nil
}

// Heads is every chain's head at the base (nil for an empty base): its
// Chains, or for a ledger that had only the legacy chain then, that chain
// ending at Prev.
func (b Base) Heads() (map[string]chain.ChainHead, error) {
	if b.Empty() {
		return nil, nil
	}
	if b.Chains != nil {
		return maps.Clone(b.Chains), nil
	}
	h, err := b.Head()
	if err != nil {
		return nil, err
	}
	return map[string]chain.ChainHead{chain.Legacy: {Seq: h.Seq, Index: h.Index, Hash: h.Hash, Count: h.Count, Last: h.Seq}}, nil
}

// heads is every chain's head at the base, given its legacy Head.
func (b Base) heads(legacy chain.Head) map[string]chain.Head {
	if b.Empty() {
		return nil
	}
	if b.Chains == nil {
		return map[string]chain.Head{chain.Legacy: legacy}
	}
	out := make(map[string]chain.Head, len(b.Chains))
	for name, c := range b.Chains {
		out[name] = chain.Head{Seq: c.Seq, Index: c.Index, Hash: c.Hash, Count: c.Count, Chain: name}
	}
	return out
}

// Tree is the Merkle tree continued from the base's frontier.
func (b Base) Tree() (*merkle.MemTree, error) {
	if b.Empty() {
		return &merkle.MemTree{}, nil
	}
	fr := make([]tlog.Hash, len(b.Frontier))
	for i, s := range b.Frontier {
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(raw) != tlog.HashSize {
			return nil, errors.New("segment: malformed base: frontier")
		}
		copy(fr[i][:], raw)
	}
	return merkle.NewMemTreeFrom(int64(b.FirstIndex), fr)
}

// WriterKeys returns the base's writers as keys.
func (b Base) WriterKeys() (map[string]ed25519.PublicKey, error) {
	out := make(map[string]ed25519.PublicKey, len(b.Writers))
	for id, s := range b.Writers {
		pub, err := writer.ParsePublic(s)
		if err != nil || writer.ID(pub) != id {
			return nil, fmt.Errorf("segment: malformed base: writer %s", id)
		}
		out[id] = pub
	}
	return out, nil
}

// Folder folds messages after the base as a fold from the first message
// would have (chain.ResumeFolder).
func (b Base) Folder() (*chain.Folder, error) {
	head, err := b.Head()
	if err != nil {
		return nil, err
	}
	keys, err := b.WriterKeys()
	if err != nil {
		return nil, err
	}
	if b.Empty() {
		return chain.NewFolder(), nil
	}
	if b.Chains == nil {
		st := chain.ResumeFolder(head, keys).State()
		st.Revoked = b.Revoked
		return chain.ResumeFolderAt(st), nil
	}
	head.Seq = b.Seq
	return chain.ResumeFolderAt(chain.State{Head: head, Chains: b.Chains, Writers: keys, Revoked: b.Revoked}), nil
}

// At is the base after the first n leaves of tree, whose last event has
// hash last and lies in the message at stream sequence seq; chains is
// every chain's head there (nil: only the legacy chain).
func At(tree *merkle.MemTree, n uint64, last event.Hash, writers map[string]string, seq uint64, chains map[string]chain.ChainHead) (Base, error) {
	fr, err := tree.Frontier(int64(n))
	if err != nil {
		return Base{}, err
	}
	b := Base{FirstIndex: n, Prev: hex.EncodeToString(last[:]), Writers: writers, Seq: seq, Chains: chains}
	for _, h := range fr {
		b.Frontier = append(b.Frontier, base64.StdEncoding.EncodeToString(h[:]))
	}
	return b, nil
}
