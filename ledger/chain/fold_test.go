package chain

import (
	"context"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/writer"
)

// signedLedger builds a ledger the way the writer does: the first message
// registers w, every message is signed for its stream sequence.
type signedLedger struct {
	msgs []Message
	prev event.Hash
	next uint64
}

func (s *signedLedger) Messages(_ context.Context, fn func(Message) error) error {
	for _, m := range s.msgs {
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

// message links bodies after the ledger's head, without storing them.
func (s *signedLedger) message(bodies ...event.Body) []byte {
	var data []byte
	prev, next := s.prev, s.next
	for _, b := range bodies {
		e := &event.Event{Index: next, Prev: prev, Time: time.Unix(int64(next), 0), Operation: "Op", Body: b}
		raw := e.AppendEncoded(nil)
		prev, next = event.Of(raw), next+1
		data = append(append(data, raw...), '\n')
	}
	return data
}

// append stores a valid message of bodies signed by w; the head moves.
func (s *signedLedger) append(w *writer.Key, bodies ...event.Body) {
	s.forge(w, bodies...)
	lines, _ := event.SplitBatch(s.msgs[len(s.msgs)-1].Data)
	s.prev, s.next = event.Of(lines[len(lines)-1]), s.next+uint64(len(lines))
}

// forge stores a correctly linked message of bodies signed by w (nil:
// unsigned), which the real writer does not know of: the head stays.
func (s *signedLedger) forge(w *writer.Key, bodies ...event.Body) {
	data := s.message(bodies...)
	seq := uint64(len(s.msgs) + 1)
	m := Message{Seq: seq, Data: data}
	if w != nil {
		m.Writer, m.Signature = w.ID(), base64.StdEncoding.EncodeToString(w.Sign(seq, data))
	}
	s.store(m)
}

// store puts a message at the next sequence.
func (s *signedLedger) store(m Message) {
	m.Seq = uint64(len(s.msgs) + 1)
	s.msgs = append(s.msgs, m)
}

func register(w, by *writer.Key) *event.WriterRegistered {
	return &event.WriterRegistered{WriterID: w.ID(), PublicKey: w.PublicText(), RegisteredBy: by.ID()}
}

func TestFolderAuthenticates(t *testing.T) {
	first, second, stranger := writer.Generate(), writer.Generate(), writer.Generate()
	tests := []struct {
		name   string
		attack func(s *signedLedger)
		want   error // nil: accepted
	}{
		{"registered writer", func(s *signedLedger) { s.append(first, &event.APICall{}) }, nil},
		{"writer registered by a writer", func(s *signedLedger) {
			s.append(first, register(second, first))
			s.append(second, &event.APICall{})
		}, nil},
		{"unsigned after registration", func(s *signedLedger) { s.forge(nil, &event.GrantCreated{GrantID: "g"}) }, ErrUnsigned},
		{"stranger's key", func(s *signedLedger) { s.forge(stranger, &event.GrantCreated{GrantID: "g"}) }, ErrUnknownWriter},
		{"stranger registers itself late", func(s *signedLedger) { s.forge(stranger, register(stranger, stranger)) }, ErrUnknownWriter},
		{"claims a registered writer", func(s *signedLedger) {
			s.forge(stranger, &event.GrantCreated{GrantID: "g"})
			s.msgs[len(s.msgs)-1].Writer = first.ID()
		}, ErrBadSignature},
		{"replayed old batch", func(s *signedLedger) { s.store(s.msgs[1]) }, ErrBadSignature},
		{"garbage", func(s *signedLedger) { s.store(Message{Data: []byte("\x00garbage")}) }, &BrokenLinkError{}},
		{"signed but out of line", func(s *signedLedger) {
			s.next += 5 // a gap in the indexes
			s.forge(first, &event.APICall{})
			s.next -= 5
		}, &BrokenLinkError{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &signedLedger{}
			s.append(first, register(first, first), &event.APICall{})
			s.append(first, &event.APICall{})
			tt.attack(s)
			s.append(first, &event.APICall{}) // the real writer carries on after its own head
			r, err := Audit(context.Background(), s)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == nil {
				if len(r.Quarantined) != 0 {
					t.Fatalf("quarantined %v", r.Quarantined[0])
				}
				return
			}
			if len(r.Quarantined) != 1 {
				t.Fatalf("%d quarantined, want 1: %v", len(r.Quarantined), r.Quarantined)
			}
			q := r.Quarantined[0]
			var bl *BrokenLinkError
			if _, isLink := tt.want.(*BrokenLinkError); isLink && !errors.As(q, &bl) || !isLink && !errors.Is(q, tt.want) {
				t.Fatalf("quarantined for %v, want %v", q.Reason, tt.want)
			}
			if r.Head.Count != 4 || r.Head.Seq != uint64(len(s.msgs)) {
				t.Fatalf("head %+v: the chain did not continue from the last valid event", r.Head)
			}
		})
	}
}

func TestFolderBootstrapNeedsSelfRegistration(t *testing.T) {
	w := writer.Generate()
	s := &signedLedger{}
	s.forge(w, &event.APICall{}) // signed, but registers nobody
	s.append(w, register(w, w))
	r, err := Audit(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Quarantined) != 1 || !errors.Is(r.Quarantined[0], ErrUnknownWriter) || r.Writers[w.ID()] == "" {
		t.Fatalf("report %+v", r)
	}
}

// BenchmarkFold folds signed messages of 64 Encrypt events, as group
// commit stores them under load: the per-event cost of start-up replay,
// report compliance's tail and audit verify.
func BenchmarkFold(b *testing.B) {
	w := writer.Generate()
	var s signedLedger
	s.append(w, register(w, w))
	for range 64 {
		bodies := make([]event.Body, 64)
		for i := range bodies {
			bodies[i] = &event.APICall{EncryptionAlgorithm: "SYMMETRIC_DEFAULT", EncryptionContext: map[string]string{"app": "bench"}}
		}
		s.append(w, bodies...)
	}
	events := 0
	for _, m := range s.msgs {
		lines, _ := event.SplitBatch(m.Data)
		events += len(lines)
	}
	b.ResetTimer()
	for range b.N {
		f := NewFolder()
		for _, m := range s.msgs {
			if _, err := f.Fold(m); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
}
