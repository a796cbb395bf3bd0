package chain

import (
	"crypto/ed25519"
	"maps"

	"github.com/keyledger/keyledger/ledger/event"
)

// ResumeFolder continues folding after head (from a snapshot that covers
// the ledger through head), with the writers registered by then: messages
// after head.Seq are authenticated and linked exactly as a fold from the
// first message would.
//
// head is the last event of the legacy chain, what snapshots and bases of
// ledgers from before chains record; ResumeFolderAt continues any fold.
func ResumeFolder(head Head, writers map[string]ed25519.PublicKey) *Folder {
	head.Chain = Legacy
	chains := map[string]ChainHead{}
	if !head.Empty() {
		chains[Legacy] = ChainHead{Seq: head.Seq, Index: head.Index, Hash: head.Hash, Count: head.Count, Last: head.Seq}
	}
	return ResumeFolderAt(State{Head: head, Chains: chains, Writers: writers})
}

// ResumeFolderAt continues a fold from where st says it stood: messages
// after st.Head.Seq are authenticated and linked exactly as a fold from
// the first message would. Every chain's Last must be at or before
// st.Head.Seq.
func ResumeFolderAt(st State) *Folder {
	f := &Folder{head: st.Head, chains: map[string]*ChainHead{}, writers: maps.Clone(st.Writers),
		revoked: maps.Clone(st.Revoked), through: st.Head.Seq}
	if f.writers == nil {
		f.writers = map[string]ed25519.PublicKey{}
	}
	if f.revoked == nil {
		f.revoked = map[string]Revocation{} // a state saved before revocation existed
	}
	for name, c := range st.Chains {
		c := c
		f.chains[name] = &c
	}
	return f
}

// Register returns writers with the writers recs register added and those
// they revoke removed, and revoked with those they revoke added (neither
// map is modified): the rule a Folder applies, for folds that track
// writers beside it (snapshots).
func Register(writers map[string]ed25519.PublicKey, revoked map[string]Revocation, recs []event.Record) (map[string]ed25519.PublicKey, map[string]Revocation) {
	f := Folder{writers: writers, revoked: revoked}
	f.apply(recs)
	return f.writers, f.revoked
}
