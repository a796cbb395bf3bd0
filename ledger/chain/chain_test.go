package chain

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keyledger/keyledger/ledger/event"
)

type memSource [][]byte

func (m memSource) Messages(_ context.Context, fn func(Message) error) error {
	for i, d := range m {
		if err := fn(Message{Seq: uint64(i + 1), Data: d}); err != nil {
			return err
		}
	}
	return nil
}

// build makes n messages of two linked events each.
func build(n int) memSource {
	var out memSource
	var prev event.Hash
	idx := uint64(0)
	for i := 0; i < n; i++ {
		var msg []byte
		for j := 0; j < 2; j++ {
			e := &event.Event{Index: idx, Prev: prev, Time: time.Unix(int64(idx), 0), Operation: "Encrypt", Body: &event.APICall{}}
			raw := e.AppendEncoded(nil)
			prev = event.Of(raw)
			idx++
			msg = append(append(msg, raw...), '\n')
		}
		out = append(out, msg)
	}
	return out
}

func TestVerifyIntact(t *testing.T) {
	src := build(5)
	head, err := Verify(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if head.Count != 10 || head.Index != 9 || head.Seq != 5 {
		t.Fatalf("head = %+v", head)
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(memSource) memSource
		wantSeq uint64
	}{
		{"changed byte", func(s memSource) memSource {
			s[1] = append([]byte(nil), s[1]...)
			s[1][40] ^= 1 // inside the first event's prev hash
			return s
		}, 2},
		{"dropped message", func(s memSource) memSource { return append(s[:2:2], s[3:]...) }, 3},
		{"swapped messages", func(s memSource) memSource { s[1], s[2] = s[2], s[1]; return s }, 2},
		{"inserted message", func(s memSource) memSource {
			return append(append(s[:2:2], build(1)[0]), s[2:]...)
		}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Verify(context.Background(), tt.tamper(build(5)))
			var bl *BrokenLinkError
			if !errors.As(err, &bl) {
				t.Fatalf("err = %v, want a broken link", err)
			}
			if bl.Seq != tt.wantSeq {
				t.Fatalf("broken at seq %d, want %d (%v)", bl.Seq, tt.wantSeq, bl)
			}
		})
	}
}
