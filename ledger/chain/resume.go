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
func ResumeFolder(head Head, writers map[string]ed25519.PublicKey) *Folder {
	return &Folder{linker: Linker{head: head}, writers: maps.Clone(writers), through: head.Seq}
}

// Register returns writers with the writers recs register added (writers
// itself is not modified): the rule a Folder applies, for folds that track
// writers beside it (snapshots).
func Register(writers map[string]ed25519.PublicKey, recs []event.Record) map[string]ed25519.PublicKey {
	f := Folder{writers: writers}
	f.register(recs)
	return f.writers
}
