package chain

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/writer"
)

// chainedLedger builds a ledger of several chains the way the writers do:
// each message is linked after its chain's head and signed for its place
// on the chain (the chain's previous message); legacy messages are signed
// for their stream sequence.
type chainedLedger struct {
	msgs  []Message
	heads map[string]ChainHead // as the real writers know them
}

func newChained() *chainedLedger { return &chainedLedger{heads: map[string]ChainHead{}} }

func (s *chainedLedger) Messages(_ context.Context, fn func(Message) error) error {
	for _, m := range s.msgs {
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

// build links bodies after chain's head, without storing them.
func (s *chainedLedger) build(chain string, bodies ...event.Body) ([]byte, ChainHead) {
	h := s.heads[chain]
	var data []byte
	for _, b := range bodies {
		e := &event.Event{Index: h.NextIndex(), Prev: h.Hash, Chain: chain, Time: time.Unix(int64(len(s.msgs)), 0), Operation: "Op", Body: b}
		raw := e.AppendEncoded(nil)
		h.Index, h.Hash, h.Count = e.Index, event.Of(raw), h.Count+1
		data = append(append(data, raw...), '\n')
	}
	return data, h
}

// sign signs data for its place on chain, as w.
func (s *chainedLedger) sign(w *writer.Key, chain string, data []byte) Message {
	seq := uint64(len(s.msgs) + 1)
	m := Message{Seq: seq, Chain: chain, Data: data, Writer: w.ID()}
	if chain == Legacy {
		m.Signature = base64.StdEncoding.EncodeToString(w.Sign(seq, data))
	} else {
		m.Signature = base64.StdEncoding.EncodeToString(w.SignAt(chain, s.heads[chain].Last, data))
	}
	return m
}

// append stores a valid message of bodies on chain, signed by w.
func (s *chainedLedger) append(w *writer.Key, chain string, bodies ...event.Body) {
	data, h := s.build(chain, bodies...)
	s.store(s.sign(w, chain, data))
	h.Seq, h.Last = uint64(len(s.msgs)), uint64(len(s.msgs))
	s.heads[chain] = h
}

// store puts a message at the next sequence; a chain's Last moves with
// it, as JetStream's last sequence on the subject does.
func (s *chainedLedger) store(m Message) {
	m.Seq = uint64(len(s.msgs) + 1)
	s.msgs = append(s.msgs, m)
	if ValidName(m.Chain) {
		h := s.heads[m.Chain]
		h.Last = m.Seq
		s.heads[m.Chain] = h
	}
}

func TestChainNames(t *testing.T) {
	w := writer.Generate()
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"", true}, {DataChain(w.ID()), true}, {"c.0", true}, {"c.63", true},
		{"c.64", false}, {"c.-1", false}, {"c.07", false}, {"c.", false}, {"w.", false},
		{"w." + w.ID()[:31], false}, {"w.ABCDEF0123456789ABCDEF0123456789", false}, {"x.1", false}, {"1", false},
	} {
		if got := ValidName(c.name); got != c.ok {
			t.Errorf("ValidName(%q) = %v, want %v", c.name, got, c.ok)
		}
	}
	if p := Partition("key/1234"); p < 0 || p >= Partitions || ControlChainOf("key/1234") != ControlChain(p) {
		t.Fatalf("partition %d", p)
	}
	// Unrelated keys spread over the partitions.
	seen := map[int]bool{}
	for i := range 1000 {
		seen[Partition("key/"+time.Unix(int64(i), 0).String())] = true
	}
	if len(seen) < Partitions*3/4 {
		t.Fatalf("1000 keys fall on only %d of %d partitions", len(seen), Partitions)
	}
}

// TestFolderChains: two writers, each on its own data chain, both on the
// control chains, interleaved in the stream: everything is accepted, each
// chain links on its own, and positions count every chain in stream order.
func TestFolderChains(t *testing.T) {
	a, b := writer.Generate(), writer.Generate()
	da, db := DataChain(a.ID()), DataChain(b.ID())
	s := newChained()
	s.append(a, da, register(a, a))
	s.append(a, da, register(b, a), &event.APICall{})
	s.append(b, db, &event.APICall{}, &event.APICall{})
	s.append(a, "c.5", &event.KeyEnabled{})
	s.append(b, "c.5", &event.KeyDisabled{})
	s.append(b, "c.9", &event.KeyEnabled{})
	s.append(a, da, &event.APICall{})
	s.append(b, db, &event.APICall{})
	f := NewFolder()
	var pos uint64
	for _, m := range s.msgs {
		recs, err := f.Fold(m)
		if err != nil {
			t.Fatalf("message %d: %v", m.Seq, err)
		}
		for _, r := range recs {
			if r.Pos != pos || r.Writer != m.Writer || r.Event.Chain != m.Chain {
				t.Fatalf("record at %d: pos %d writer %s chain %q", pos, r.Pos, r.Writer, r.Event.Chain)
			}
			pos++
		}
	}
	if h := f.Head(); h.Count != 10 || h.Seq != 8 || h.Chain != db {
		t.Fatalf("head %+v", h)
	}
	want := map[string]ChainHead{
		da: {Seq: 7, Index: 3, Count: 4, Last: 7}, db: {Seq: 8, Index: 2, Count: 3, Last: 8},
		"c.5": {Seq: 5, Index: 1, Count: 2, Last: 5}, "c.9": {Seq: 6, Index: 0, Count: 1, Last: 6},
	}
	got := f.Chains()
	for name, w := range want {
		g := got[name]
		if g.Seq != w.Seq || g.Index != w.Index || g.Count != w.Count || g.Last != w.Last || g.Hash != s.heads[name].Hash {
			t.Errorf("chain %s: %+v, want %+v", name, g, w)
		}
	}
	// Resuming from any point folds the rest exactly as the whole fold.
	for cut := 1; cut < len(s.msgs); cut++ {
		head := NewFolder()
		for _, m := range s.msgs[:cut] {
			if _, err := head.Fold(m); err != nil {
				t.Fatal(err)
			}
		}
		r := ResumeFolderAt(head.State())
		for _, m := range s.msgs[cut:] {
			if _, err := r.Fold(m); err != nil {
				t.Fatalf("resumed at %d: message %d: %v", cut, m.Seq, err)
			}
		}
		if r.Head() != f.Head() {
			t.Fatalf("resumed at %d: head %+v, want %+v", cut, r.Head(), f.Head())
		}
	}
}

// TestFolderChainRules: what a message on the new chains must satisfy.
// After each attack the real writer appends again on the attacked chain,
// after the attacker's message (its expected-last-subject-sequence names
// it), and is accepted.
func TestFolderChainRules(t *testing.T) {
	a, b, stranger := writer.Generate(), writer.Generate(), writer.Generate()
	da, db := DataChain(a.ID()), DataChain(b.ID())
	tests := []struct {
		name   string
		chain  string // the chain attacked, on which a carries on
		attack func(s *chainedLedger)
		want   error
	}{
		{"another writer on a's data chain", da, func(s *chainedLedger) {
			data, _ := s.build(da, &event.APICall{})
			s.store(s.sign(b, da, data))
		}, ErrNotItsChain},
		{"a stranger on a control chain", "c.1", func(s *chainedLedger) {
			data, _ := s.build("c.1", &event.KeyEnabled{})
			s.store(s.sign(stranger, "c.1", data))
		}, ErrUnknownWriter},
		{"unsigned on a control chain", "c.1", func(s *chainedLedger) {
			data, _ := s.build("c.1", &event.KeyEnabled{})
			s.store(Message{Chain: "c.1", Data: data})
		}, ErrUnsigned},
		{"a captured message replayed on its chain", da, func(s *chainedLedger) {
			s.store(s.msgs[len(s.msgs)-1]) // a's last data message, again
		}, ErrBadSignature},
		{"a valid message moved to another chain", "c.2", func(s *chainedLedger) {
			data, _ := s.build("c.2", &event.KeyEnabled{})
			m := s.sign(a, "c.2", data)
			m.Chain = "c.3"
			s.store(m)
		}, ErrBadSignature},
		{"an event naming another chain", "c.1", func(s *chainedLedger) {
			data, _ := s.build("c.2", &event.KeyEnabled{}) // linked and signed for c.1 below
			h := s.heads["c.1"]
			e := &event.Event{Index: h.NextIndex(), Prev: h.Hash, Chain: "c.2", Time: time.Unix(9, 0), Operation: "Op", Body: &event.KeyEnabled{}}
			data = append(e.AppendEncoded(nil), '\n')
			s.store(s.sign(a, "c.1", data))
		}, &BrokenLinkError{}},
		{"garbage on a's data chain", da, func(s *chainedLedger) {
			s.store(Message{Chain: da, Data: []byte("garbage")})
		}, &BrokenLinkError{}},
		{"no chain", "c.1", func(s *chainedLedger) {
			data, _ := s.build("c.1", &event.KeyEnabled{})
			s.store(Message{Chain: "c.99", Data: data, Writer: a.ID(), Signature: "x"})
		}, ErrUnknownChain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newChained()
			s.append(a, da, register(a, a), register(b, a))
			s.append(b, db, &event.APICall{})
			s.append(a, "c.1", &event.KeyEnabled{})
			s.append(a, da, &event.APICall{})
			tt.attack(s)
			s.append(a, tt.chain, &event.APICall{})
			r, err := Audit(context.Background(), s)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Quarantined) == 0 {
				t.Fatal("nothing quarantined")
			}
			for _, q := range r.Quarantined {
				var bl *BrokenLinkError
				if _, isLink := tt.want.(*BrokenLinkError); isLink && !errors.As(q, &bl) || !isLink && !errors.Is(q, tt.want) {
					t.Fatalf("quarantined for %v, want %v", q.Reason, tt.want)
				}
			}
			if last := s.msgs[len(s.msgs)-1]; r.Head.Seq != last.Seq || r.Chains[tt.chain].Seq != last.Seq {
				t.Fatalf("the writer's message after the attack was not accepted: head %+v", r.Head)
			}
			if r.Head.Count != 6 {
				t.Fatalf("head %+v: %d events, want 6", r.Head, r.Head.Count)
			}
		})
	}
}

// TestLegacyLedgerContinuesOnChains: a ledger written before chains (the
// legacy chain, signed for stream sequences) continues on data and
// control chains; positions continue from the legacy chain's, and a legacy
// message after them still verifies by its own rule.
func TestLegacyLedgerContinuesOnChains(t *testing.T) {
	a, b := writer.Generate(), writer.Generate()
	s := newChained()
	s.append(a, Legacy, register(a, a), &event.APICall{})
	s.append(a, Legacy, &event.KeyEnabled{})
	legacy := NewFolder() // what an old build's fold, or its snapshot, holds
	for _, m := range s.msgs {
		if _, err := legacy.Fold(m); err != nil {
			t.Fatal(err)
		}
	}
	s.append(a, DataChain(a.ID()), register(b, a))
	s.append(b, "c.3", &event.KeyDisabled{})
	s.append(a, Legacy, &event.APICall{}) // an old build still running
	s.append(b, DataChain(b.ID()), &event.APICall{})
	r, err := Audit(context.Background(), s)
	if err != nil || len(r.Quarantined) > 0 {
		t.Fatalf("%v %v", err, r.Quarantined)
	}
	if r.Head.Count != 7 || r.Chains[Legacy].Count != 4 || r.Chains[Legacy].Index != 3 {
		t.Fatalf("head %+v, legacy %+v", r.Head, r.Chains[Legacy])
	}
	// A fold resumed from an old snapshot (a legacy head, no chains).
	lh := legacy.Head()
	f := ResumeFolder(Head{Seq: lh.Seq, Index: lh.Index, Hash: lh.Hash, Count: lh.Count}, legacy.Keys())
	var pos []uint64
	for _, m := range s.msgs[lh.Seq:] {
		recs, err := f.Fold(m)
		if err != nil {
			t.Fatalf("message %d: %v", m.Seq, err)
		}
		for _, r := range recs {
			pos = append(pos, r.Pos)
		}
	}
	if f.Head() != r.Head || len(pos) != 4 || pos[0] != 3 || pos[3] != 6 {
		t.Fatalf("resumed head %+v positions %v, want %+v and 3..6", f.Head(), pos, r.Head)
	}
}

// TestFoldOwnChecksTheLedgerNotTheSignature: a writer's own message is
// folded from the events it holds, without checking its own signature
// again, but still by every rule that depends on the ledger.
func TestFoldOwnChecksTheLedgerNotTheSignature(t *testing.T) {
	a, stranger := writer.Generate(), writer.Generate()
	s := newChained()
	s.append(a, DataChain(a.ID()), register(a, a))
	f := NewFolder()
	if _, err := f.Fold(s.msgs[0]); err != nil {
		t.Fatal(err)
	}
	data, _ := s.build(DataChain(a.ID()), &event.APICall{})
	lines, _ := event.SplitBatch(data)
	ev, _ := event.Decode(lines[0])
	m := s.sign(a, DataChain(a.ID()), data)
	m.Seq = 2
	m.Signature = "not checked"
	if recs, err := f.FoldOwn(m, []*event.Event{ev}); err != nil || len(recs) != 1 || recs[0].Pos != 1 {
		t.Fatalf("%v %v", recs, err)
	}
	// A stranger's "own" message is refused all the same.
	data, _ = s.build("c.0", &event.KeyEnabled{})
	lines, _ = event.SplitBatch(data)
	ev, _ = event.Decode(lines[0])
	if _, err := f.FoldOwn(Message{Seq: 3, Chain: "c.0", Data: data, Writer: stranger.ID(), Signature: "x"}, []*event.Event{ev}); !errors.Is(err, ErrUnknownWriter) {
		t.Fatalf("err = %v", err)
	}
}

func TestLinksFollowsEveryChain(t *testing.T) {
	a := writer.Generate()
	s := newChained()
	s.append(a, DataChain(a.ID()), register(a, a), &event.APICall{})
	s.append(a, "c.4", &event.KeyEnabled{})
	s.append(a, DataChain(a.ID()), &event.APICall{})
	var raws [][]byte
	for _, m := range s.msgs {
		lines, _ := event.SplitBatch(m.Data)
		raws = append(raws, lines...)
	}
	ls := NewLinks(nil)
	for i, raw := range raws {
		if _, err := ls.Link(uint64(i+1), raw); err != nil {
			t.Fatal(err)
		}
	}
	if ls.Count() != 4 || ls.Heads()["c.4"].Count != 1 {
		t.Fatalf("count %d heads %+v", ls.Count(), ls.Heads())
	}
	// Swapping two events of one chain breaks it.
	ls = NewLinks(nil)
	raws[1], raws[3] = raws[3], raws[1]
	var err error
	for i, raw := range raws {
		if _, err = ls.Link(uint64(i+1), raw); err != nil {
			break
		}
	}
	var bl *BrokenLinkError
	if !errors.As(err, &bl) || bl.Chain != DataChain(a.ID()) {
		t.Fatalf("err = %v", err)
	}
}

// A block-file reader knows a message's chain from its subject alone.
func TestFromSubject(t *testing.T) {
	id := strings.Repeat("ab", 16)
	for subject, want := range map[string]string{
		"keyledger.events":                Legacy,
		"keyledger.events.3":              Legacy,
		"keyledger.events.w." + id:        DataChain(id),
		"keyledger.events.3.w." + id:      DataChain(id),
		"keyledger.events.c.17":           ControlChain(17),
		"keyledger.events.2.c.0":          ControlChain(0),
		"keyledger.events.c.64":           Legacy, // no such partition
		"keyledger.events.w.not-a-writer": Legacy,
		"events":                          Legacy,
	} {
		if got := FromSubject(subject); got != want {
			t.Errorf("FromSubject(%q) = %q, want %q", subject, got, want)
		}
	}
}
