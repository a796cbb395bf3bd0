package salvage

import (
	"crypto/ed25519"
	"encoding/base64"
	"testing"
	"time"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/writer"
)

// TestGapKeepsRevokedWriters: a salvage resuming the legacy chain after a
// gap keeps the writers revoked before it revoked, even when a verified
// checkpoint from before the revocation names one live: its key signs
// nothing after the gap either. (The review of revocation found the
// resumed fold started with no revoked set, trusting such a checkpoint.)
func TestGapKeepsRevokedWriters(t *testing.T) {
	live, gone := writer.Generate(), writer.Generate()
	st := chain.State{
		Head:    chain.Head{Seq: 9, Index: 8, Count: 9, Chain: chain.Legacy},
		Chains:  map[string]chain.ChainHead{chain.Legacy: {Seq: 9, Index: 8, Count: 9, Last: 9}},
		Writers: map[string]ed25519.PublicKey{live.ID(): live.Public()},
		Revoked: map[string]chain.Revocation{gone.ID(): {PublicKey: gone.PublicText(), By: live.ID(), Seq: 7}},
	}
	s := &state{rep: &Report{}, folder: chain.ResumeFolderAt(st), pendingLoss: &Loss{FromSeq: 10, ToSeq: 13, FromIndex: 9},
		cps: []storedCheckpoint{{sigOK: true, size: 5, writers: map[string]string{live.ID(): live.PublicText(), gone.ID(): gone.PublicText()}}}}
	if w := s.trustedWriters(); w[gone.ID()] != "" || w[live.ID()] == "" {
		t.Fatalf("trusted writers after the revocation: %v", w)
	}

	// The first message after a gap on the legacy chain, signed by the
	// revoked key.
	ev := &event.Event{Index: 12, Prev: event.Of([]byte("lost")), Time: time.Now().UTC(), Operation: "Test", Body: &event.APICall{}}
	data := append(ev.AppendEncoded(nil), '\n')
	s.resume(chain.Message{Seq: 14, Chain: chain.Legacy, Data: data})
	if s.folder.Registered(gone.ID()) {
		t.Fatal("the revoked writer is registered again after the gap")
	}
	if _, ok := s.folder.Revoked()[gone.ID()]; !ok {
		t.Fatal("the gap dropped the revoked set")
	}
	m := chain.Message{Seq: 14, Chain: chain.Legacy, Data: data, Writer: gone.ID(), Signature: base64.StdEncoding.EncodeToString(gone.Sign(14, data))}
	if _, err := s.folder.Fold(m); err == nil {
		t.Fatal("a message the revoked key signed after the gap was accepted")
	}
}
