package chain

import (
	"fmt"

	"github.com/keyledger/keyledger/ledger/event"
)

// Head is the position of the last linked event.
type Head struct {
	Seq   uint64     // stream sequence of the message holding the event
	Index uint64     // the event's index
	Hash  event.Hash // the event's hash
	Count uint64     // number of events linked so far
}

// Empty reports whether no event has been linked.
func (h Head) Empty() bool { return h.Count == 0 }

// NextIndex is the index the next event must carry.
func (h Head) NextIndex() uint64 {
	if h.Empty() {
		return 0
	}
	return h.Index + 1
}

// BrokenLinkError names the first link that does not hold.
type BrokenLinkError struct {
	Seq      uint64 // stream sequence of the message holding the bad event
	Index    uint64 // the index the event should have had
	Expected string // what the link should have been
	Found    string // what the event holds
}

func (e *BrokenLinkError) Error() string {
	return fmt.Sprintf("chain broken at stream sequence %d, event index %d: expected %s, found %s",
		e.Seq, e.Index, e.Expected, e.Found)
}

// Linker links events one at a time.
type Linker struct {
	head Head
}

// NewLinker starts linking after head (the zero Head for a whole chain).
func NewLinker(head Head) *Linker { return &Linker{head: head} }

// Head returns the position of the last linked event.
func (l *Linker) Head() Head { return l.head }

// Link checks that raw, found in the message at stream sequence seq, is the
// next event on the chain, and advances past it.
func (l *Linker) Link(seq uint64, raw []byte) (event.Hash, error) {
	want := l.head.NextIndex()
	link, prev, err := event.DecodeLink(raw)
	if err != nil {
		return event.Hash{}, &BrokenLinkError{Seq: seq, Index: want, Expected: "a decodable event", Found: err.Error()}
	}
	return l.link(seq, raw, link.Index, prev)
}

// LinkDecoded is Link for an event already decoded from raw, whose index
// and prev are those DecodeLink would read (both decoders read the same
// JSON members), so raw is not parsed twice.
func (l *Linker) LinkDecoded(seq uint64, raw []byte, ev *event.Event) (event.Hash, error) {
	return l.link(seq, raw, ev.Index, ev.Prev)
}

func (l *Linker) link(seq uint64, raw []byte, index uint64, prev event.Hash) (event.Hash, error) {
	want := l.head.NextIndex()
	if index != want {
		return event.Hash{}, &BrokenLinkError{Seq: seq, Index: want,
			Expected: fmt.Sprintf("index %d", want), Found: fmt.Sprintf("index %d", index)}
	}
	if prev != l.head.Hash {
		return event.Hash{}, &BrokenLinkError{Seq: seq, Index: want,
			Expected: "prev " + l.head.Hash.String(), Found: "prev " + prev.String()}
	}
	h := event.Of(raw)
	l.head = Head{Seq: seq, Index: index, Hash: h, Count: l.head.Count + 1}
	return h, nil
}
