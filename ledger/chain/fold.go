package chain

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/writer"
)

// Message is one ledger message as stored: its stream sequence, its exact
// bytes (event lines) and the writer's headers.
type Message struct {
	Seq       uint64
	Data      []byte
	Writer    string // writer ID (writer.HeaderWriter)
	Signature string // base64 Ed25519 signature (writer.HeaderSignature)
}

// Why a message is quarantined, besides a *BrokenLinkError (it does not
// link: garbage, a replayed or reordered batch, a changed event).
var (
	ErrUnsigned      = errors.New("the message is not signed by a writer")
	ErrUnknownWriter = errors.New("the message is signed by a writer the ledger has not registered")
	ErrBadSignature  = errors.New("the writer's signature does not verify (forged, changed, or stored out of place)")
)

// Quarantine names a message that folding refused. Nothing in it was
// applied; the chain continues from the last valid event.
type Quarantine struct {
	Seq    uint64 // stream sequence of the message
	Writer string // the writer it claims, if any
	Reason error
}

func (q *Quarantine) Error() string {
	return fmt.Sprintf("message at stream sequence %d quarantined: %v", q.Seq, q.Reason)
}

func (q *Quarantine) Unwrap() error { return q.Reason }

// Folder authenticates and links ledger messages one at a time, the single
// rule every reader of the ledger applies (replay, follow, audit verify):
//
//   - a message must be signed by a registered writer for the stream
//     sequence it is stored at;
//   - the ledger's very first writer registers itself: while no writer is
//     registered, a message whose first event is a WriterRegistered naming
//     the key that signed the message is accepted, and registers it;
//   - unsigned messages are accepted only while no writer is registered
//     (ledgers written before writers signed), never after;
//   - every event must link to the last valid event;
//   - a WriterRegistered event in an accepted message registers its writer
//     for the following messages.
//
// A message that breaks a rule is quarantined whole. A Folder is not safe
// for concurrent use.
type Folder struct {
	linker  Linker
	writers map[string]ed25519.PublicKey
	through uint64
}

// NewFolder starts folding a ledger from its first message.
func NewFolder() *Folder { return &Folder{writers: map[string]ed25519.PublicKey{}} }

// Head is the last valid event.
func (f *Folder) Head() Head { return f.linker.head }

// Through is the stream sequence of the last message folded, valid or
// quarantined: where the next message will be stored.
func (f *Folder) Through() uint64 { return max(f.through, f.linker.head.Seq) }

// Registered reports whether a writer is registered.
func (f *Folder) Registered(id string) bool { _, ok := f.writers[id]; return ok }

// Keys returns the registered writers' public keys by ID. The map is never
// modified after it is returned (registration copies it), so it may be read
// concurrently; callers must not change it.
func (f *Folder) Keys() map[string]ed25519.PublicKey { return f.writers }

// Writers returns the registered writers' IDs and public keys (base64).
func (f *Folder) Writers() map[string]string {
	out := make(map[string]string, len(f.writers))
	for id, pub := range f.writers {
		out[id] = base64.StdEncoding.EncodeToString(pub)
	}
	return out
}

// Fold authenticates and links one message and returns its records, or a
// *Quarantine and leaves the chain as it was.
func (f *Folder) Fold(m Message) ([]event.Record, error) {
	f.through = max(f.through, m.Seq)
	q := func(reason error) error { return &Quarantine{Seq: m.Seq, Writer: m.Writer, Reason: reason} }
	lines, err := event.SplitBatch(m.Data)
	if err != nil {
		return nil, q(&BrokenLinkError{Seq: m.Seq, Index: f.linker.head.NextIndex(), Expected: "a message of events", Found: err.Error()})
	}

	if m.Writer != "" || m.Signature != "" || len(f.writers) > 0 {
		pub, ok := f.writers[m.Writer]
		switch {
		case m.Writer == "" || m.Signature == "":
			return nil, q(ErrUnsigned)
		case !ok && len(f.writers) == 0:
			pub, ok = selfRegistration(m.Writer, lines[0])

		}
		if !ok {
			return nil, q(ErrUnknownWriter)
		}
		sig, err := base64.StdEncoding.DecodeString(m.Signature)
		if err != nil || !writer.Verify(pub, m.Seq, m.Data, sig) {
			return nil, q(ErrBadSignature)
		}
	}
	linker := f.linker
	recs := make([]event.Record, 0, len(lines))
	for _, raw := range lines {
		// Decoding first links from the decoded event: JSON parsing is
		// most of a fold's cost, and an event is parsed once. An event
		// that does not decode is linked the slow way, so the reason it is
		// refused stays the first rule it breaks.
		ev, derr := event.Decode(raw)
		var h event.Hash
		if derr == nil {
			h, err = linker.LinkDecoded(m.Seq, raw, ev)
		} else {
			h, err = linker.Link(m.Seq, raw)
		}
		if err != nil {
			return nil, q(err)
		}
		if derr != nil {
			return nil, q(&BrokenLinkError{Seq: m.Seq, Index: linker.head.Index, Expected: "a decodable event", Found: derr.Error()})
		}
		recs = append(recs, event.Record{Seq: m.Seq, Event: ev, Raw: raw, Hash: h})
	}
	f.linker = linker
	f.register(recs)
	return recs, nil
}

// selfRegistration returns the key of a ledger's first writer if raw (the
// message's first event) registers the writer id that signed it.
func selfRegistration(id string, raw []byte) (ed25519.PublicKey, bool) {
	ev, err := event.Decode(raw)
	if err != nil {
		return nil, false
	}
	wr, ok := ev.Body.(*event.WriterRegistered)
	if !ok || wr.WriterID != id || wr.RegisteredBy != id {
		return nil, false
	}
	pub, err := writer.ParsePublic(wr.PublicKey)
	if err != nil || writer.ID(pub) != id {
		return nil, false
	}
	return pub, true
}

// Advance moves past records the caller linked itself (a writer's own
// committed batch, stored at seq).
func (f *Folder) Advance(seq uint64, recs []event.Record) {
	last := recs[len(recs)-1]
	f.linker.head = Head{Seq: seq, Index: last.Event.Index, Hash: last.Hash, Count: f.linker.head.Count + uint64(len(recs))}
	f.through = max(f.through, seq)
	f.register(recs)
}

// register adds the writers that recs register.
func (f *Folder) register(recs []event.Record) {
	for _, r := range recs {
		wr, ok := r.Event.Body.(*event.WriterRegistered)
		if !ok {
			continue
		}
		if pub, err := writer.ParsePublic(wr.PublicKey); err == nil && writer.ID(pub) == wr.WriterID {
			if _, dup := f.writers[wr.WriterID]; !dup {
				f.writers = cloneWith(f.writers, wr.WriterID, pub)
			}
		}
	}
}

func cloneWith(m map[string]ed25519.PublicKey, id string, pub ed25519.PublicKey) map[string]ed25519.PublicKey {
	out := make(map[string]ed25519.PublicKey, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	out[id] = pub
	return out
}

// Source yields a ledger's messages in stream order.
type Source interface {
	Messages(ctx context.Context, fn func(Message) error) error
}

// Report is what Audit found.
type Report struct {
	Head        Head              // the last valid event
	Writers     map[string]string // registered writers: ID → public key (base64)
	Quarantined []*Quarantine     // every refused message, in stream order
}

// Audit folds a whole ledger as every reader does and reports its head,
// its writers and every quarantined message. The error is only for a
// ledger that could not be read.
func Audit(ctx context.Context, src Source) (Report, error) { return AuditFold(ctx, src, nil) }

// AuditFold is Audit that also hands every accepted event, in order, to fn
// (nil for none): what a caller checks beyond the links, such as the
// Merkle root a signed checkpoint holds.
func AuditFold(ctx context.Context, src Source, fn func(event.Record)) (Report, error) {
	return AuditFoldFrom(ctx, src, NewFolder(), fn)
}

// AuditFoldFrom is AuditFold continuing f (a folder resumed at a ledger's
// base, whose messages src yields from there).
func AuditFoldFrom(ctx context.Context, src Source, f *Folder, fn func(event.Record)) (Report, error) {
	var qs []*Quarantine
	err := src.Messages(ctx, func(m Message) error {
		recs, err := f.Fold(m)
		if err == nil && fn != nil {
			for _, r := range recs {
				fn(r)
			}
		}
		if err != nil {
			var q *Quarantine
			if errors.As(err, &q) {
				qs = append(qs, q)
				return nil
			}
			return err
		}
		return nil
	})
	return Report{Head: f.Head(), Writers: f.Writers(), Quarantined: qs}, err
}

// Verify walks a whole ledger and returns its head. If any message was
// quarantined it returns the first as a *Quarantine (which unwraps to its
// reason, e.g. a *BrokenLinkError).
func Verify(ctx context.Context, src Source) (Head, error) {
	r, err := Audit(ctx, src)
	if err == nil && len(r.Quarantined) > 0 {
		err = r.Quarantined[0]
	}
	return r.Head, err
}
