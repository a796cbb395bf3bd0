package chain

import (
	"fmt"

	"github.com/keyledger/keyledger/ledger/event"
)

// Head is the position of the last linked event: of one chain (a
// Linker's), or of the ledger in stream order (a Folder's), where Count is
// then the number of events on every chain so far, the next event's
// position.
type Head struct {
	Seq   uint64     // stream sequence of the message holding the event
	Index uint64     // the event's index on its chain
	Hash  event.Hash // the event's hash
	Count uint64     // number of events linked so far
	Chain string     `json:",omitempty"` // the event's chain
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
	Chain    string // the chain it is on
	Index    uint64 // the index the event should have had on it
	Expected string // what the link should have been
	Found    string // what the event holds
}

func (e *BrokenLinkError) Error() string {
	name := "chain"
	if e.Chain != Legacy {
		name = "chain " + e.Chain
	}
	return fmt.Sprintf("%s broken at stream sequence %d, event index %d: expected %s, found %s",
		name, e.Seq, e.Index, e.Expected, e.Found)
}

// Linker links the events of one chain one at a time.
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
		return event.Hash{}, &BrokenLinkError{Seq: seq, Chain: l.head.Chain, Index: want,
			Expected: fmt.Sprintf("index %d", want), Found: fmt.Sprintf("index %d", index)}
	}
	if prev != l.head.Hash {
		return event.Hash{}, &BrokenLinkError{Seq: seq, Chain: l.head.Chain, Index: want,
			Expected: "prev " + l.head.Hash.String(), Found: "prev " + prev.String()}
	}
	h := event.Of(raw)
	l.head = Head{Seq: seq, Index: index, Hash: h, Count: l.head.Count + 1, Chain: l.head.Chain}
	return h, nil
}

// Links links events of every chain, each to the last event of the chain
// it names (its "chain" member): what a reader of exported event bytes,
// without the messages they came in, checks.
type Links struct {
	chains map[string]*Linker
	count  uint64
}

// NewLinks starts linking every chain from its first event, or after
// heads (by chain name; nil for a whole ledger).
func NewLinks(heads map[string]Head) *Links {
	ls := &Links{chains: map[string]*Linker{}}
	for name, h := range heads {
		h.Chain = name
		ls.chains[name] = NewLinker(h)
		ls.count += h.Count
	}
	return ls
}

// Link checks that raw (found in the message at stream sequence seq, or at
// a line number) is the next event of the chain it names.
func (ls *Links) Link(seq uint64, raw []byte) (event.Hash, error) {
	link, prev, err := event.DecodeLink(raw)
	if err != nil {
		return event.Hash{}, &BrokenLinkError{Seq: seq, Expected: "a decodable event", Found: err.Error()}
	}
	if !ValidName(link.Chain) {
		return event.Hash{}, &BrokenLinkError{Seq: seq, Chain: link.Chain, Index: link.Index, Expected: "a chain name", Found: fmt.Sprintf("chain %q", link.Chain)}
	}
	l := ls.chains[link.Chain]
	if l == nil {
		l = NewLinker(Head{Chain: link.Chain})
		ls.chains[link.Chain] = l
	}
	h, err := l.link(seq, raw, link.Index, prev)
	if err == nil {
		ls.count++
	}
	return h, err
}

// Heads returns every chain's head.
func (ls *Links) Heads() map[string]Head {
	out := make(map[string]Head, len(ls.chains))
	for name, l := range ls.chains {
		out[name] = l.head
	}
	return out
}

// Count is how many events were linked, on every chain.
func (ls *Links) Count() uint64 { return ls.count }
