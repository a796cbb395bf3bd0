package resume

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/writer"
)

// TestImageKeepsRevokedWriters: a capture names the writers revoked by
// then apart from the live ones, and an image from before revocation (no
// "revoked" member) restores with none revoked.
func TestImageKeepsRevokedWriters(t *testing.T) {
	a, b := writer.Generate(), writer.Generate()
	tree, err := merkle.NewMemTreeFrom(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := New(tree, nil)
	ev := func(i uint64, b event.Body) event.Record {
		e := &event.Event{Index: i, Time: time.Unix(int64(i), 0), Body: b}
		return event.Record{Seq: i + 1, Pos: i, Writer: a.ID(), Event: e, Raw: e.AppendEncoded(nil)}
	}
	p.Apply([]event.Record{
		ev(0, &event.WriterRegistered{WriterID: a.ID(), PublicKey: a.PublicText(), RegisteredBy: a.ID()}),
		ev(1, &event.WriterRegistered{WriterID: b.ID(), PublicKey: b.PublicText(), RegisteredBy: a.ID()}),
	})
	p.Apply([]event.Record{ev(2, &event.WriterRevoked{WriterID: b.ID(), RevokedBy: a.ID()})})
	im, err := p.Capture(func(uint64) map[uint64]string { return nil })
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(im)
	if err != nil {
		t.Fatal(err)
	}
	var back Image
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Writers) != 1 || back.Writers[a.ID()] == "" || back.Revoked[b.ID()] != (chain.Revocation{PublicKey: b.PublicText(), By: a.ID(), Seq: 3, Index: 2, Pos: 2}) {
		t.Fatalf("image writers %v, revoked %v", back.Writers, back.Revoked)
	}
	var old Image
	if err := json.Unmarshal([]byte(`{"head":{},"writers":{"`+a.ID()+`":"`+a.PublicText()+`"},"feedNext":0,"keys":{},"compliance":{},"merkle":{}}`), &old); err != nil {
		t.Fatal(err)
	}
	q, err := Restore(&old, nil, nil)
	if err != nil || q.revoked != nil || len(q.writers) != 1 {
		t.Fatalf("an image from before revocation: %v %v %v", q, err, old.Revoked)
	}
}
