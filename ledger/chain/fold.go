package chain

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"

	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/writer"
)

// Message is one ledger message as stored: its stream sequence, its chain
// (from the subject the server stored it on), its exact bytes (event
// lines) and the writer's headers.
type Message struct {
	Seq       uint64
	Chain     string // Legacy, DataChain(id) or ControlChain(p); see ValidName
	Data      []byte
	Writer    string // writer ID (writer.HeaderWriter)
	Signature string // base64 Ed25519 signature (writer.HeaderSignature)
	// Imported marks a message a restore re-signed (writer.HeaderImported):
	// it may be on another writer's data chain.
	Imported bool
}

// Why a message is quarantined, besides a *BrokenLinkError (it does not
// link: garbage, a replayed or reordered batch, a changed event).
var (
	ErrUnsigned      = errors.New("the message is not signed by a writer")
	ErrUnknownWriter = errors.New("the message is signed by a writer the ledger has not registered")
	ErrRevokedWriter = errors.New("writer revoked: the message is signed by a writer the ledger had revoked before it")
	ErrBadSignature  = errors.New("the writer's signature does not verify (forged, changed, or stored out of place)")
	ErrNotItsChain   = errors.New("the message is on another writer's data chain")
	ErrUnknownChain  = errors.New("the message is on a subject that is no chain")
)

// Quarantine names a message that folding refused. Nothing in it was
// applied; its chain continues from the last valid event.
type Quarantine struct {
	Seq    uint64 // stream sequence of the message
	Chain  string // the chain it is on
	Writer string // the writer it claims, if any
	Reason error
}

func (q *Quarantine) Error() string {
	return fmt.Sprintf("message at stream sequence %d quarantined: %v", q.Seq, q.Reason)
}

func (q *Quarantine) Unwrap() error { return q.Reason }

// ChainHead is where one chain stands: its last valid event (Index, Hash,
// the stream sequence Seq of its message, Count events on the chain) and
// Last, the stream sequence of the chain's last message, quarantined ones
// included: the sequence the chain's next message is signed after, and
// what its writer's Nats-Expected-Last-Subject-Sequence names.
type ChainHead struct {
	Seq   uint64     `json:"seq"`
	Index uint64     `json:"index"`
	Hash  event.Hash `json:"hash"`
	Count uint64     `json:"count"`
	Last  uint64     `json:"last"`
}

// Empty reports whether the chain has no valid event.
func (c ChainHead) Empty() bool { return c.Count == 0 }

// NextIndex is the index the chain's next event must carry.
func (c ChainHead) NextIndex() uint64 {
	if c.Empty() {
		return 0
	}
	return c.Index + 1
}

func (c ChainHead) head(name string) Head {
	return Head{Seq: c.Seq, Index: c.Index, Hash: c.Hash, Count: c.Count, Chain: name}
}

// State is where a fold stands, enough to continue it (ResumeFolderAt):
// the last valid event in stream order (Head, whose Count is the number of
// events so far: the next event's position), every chain's head, the
// writers registered and not revoked by then, and those revoked.
type State struct {
	Head    Head
	Chains  map[string]ChainHead
	Writers map[string]ed25519.PublicKey
	// Revoked is every revoked writer (nil in states saved before
	// revocation existed: none was revoked).
	Revoked map[string]Revocation
}

// Revocation is where a writer was revoked: by the WriterRevoked event at
// position Pos (stream sequence Seq, chain Chain, index Index), in a
// message writer By signed. The writer's messages after Seq are
// quarantined (ErrRevokedWriter).
type Revocation struct {
	PublicKey string `json:"publicKey"` // base64, as it was registered
	By        string `json:"by"`
	Seq       uint64 `json:"seq"`
	Chain     string `json:"chain,omitempty"`
	Index     uint64 `json:"index"`
	Pos       uint64 `json:"pos"`
}

// Folder authenticates and links ledger messages one at a time, in stream
// order, the single rule every reader of the ledger applies (replay,
// follow, audit verify):
//
//   - a message on the legacy chain must be signed by a registered writer
//     for the stream sequence it is stored at (writer.Verify); unsigned
//     messages are accepted only while no writer is registered (ledgers
//     written before writers signed), never after;
//   - a message on any other chain must be signed by a registered writer
//     for its chain and the stream sequence of the chain's previous
//     message, quarantined ones included (writer.VerifyAt), and a message
//     on a data chain by that chain's writer (unless a restore re-signed
//     it: Message.Imported, and the record names the restoring writer);
//   - the ledger's very first writer registers itself: while no writer is
//     registered, a message whose first event is a WriterRegistered naming
//     the key that signed the message is accepted, and registers it;
//   - every event must link to the last valid event of its chain and name
//     that chain;
//   - a WriterRegistered event in an accepted message registers its writer
//     for the following messages, unless that writer was revoked;
//   - a WriterRevoked event in an accepted message revokes its writer for
//     the following messages (ErrRevokedWriter), unless it names no
//     registered writer or the last one: a ledger always keeps a writer, and
//     once any was registered nobody registers themselves again.
//
// A message that breaks a rule is quarantined whole. A Folder is not safe
// for concurrent use.
type Folder struct {
	head    Head
	chains  map[string]*ChainHead
	writers map[string]ed25519.PublicKey
	revoked map[string]Revocation // copied on change, like writers
	through uint64
}

// NewFolder starts folding a ledger from its first message.
func NewFolder() *Folder {
	return &Folder{chains: map[string]*ChainHead{}, writers: map[string]ed25519.PublicKey{}, revoked: map[string]Revocation{}}
}

// Head is the last valid event in stream order; its Count is the number of
// valid events so far on every chain.
func (f *Folder) Head() Head { return f.head }

// Chain is where one chain stands (the zero ChainHead for a chain with no
// message yet).
func (f *Folder) Chain(name string) ChainHead {
	if c := f.chains[name]; c != nil {
		return *c
	}
	return ChainHead{}
}

// Chains returns every chain's head, by name.
func (f *Folder) Chains() map[string]ChainHead {
	out := make(map[string]ChainHead, len(f.chains))
	for name, c := range f.chains {
		out[name] = *c
	}
	return out
}

// State is where the fold stands (see State); the maps are copies.
func (f *Folder) State() State {
	return State{Head: f.head, Chains: f.Chains(), Writers: maps.Clone(f.writers), Revoked: maps.Clone(f.revoked)}
}

// Through is the stream sequence of the last message folded, valid or
// quarantined: where the next message will be stored.
func (f *Folder) Through() uint64 { return max(f.through, f.head.Seq) }

// Registered reports whether a writer is registered (and not revoked).
func (f *Folder) Registered(id string) bool { _, ok := f.writers[id]; return ok }

// Revoked returns the revoked writers by ID. Like Keys, the map is never
// modified after it is returned; callers must not change it.
func (f *Folder) Revoked() map[string]Revocation { return f.revoked }

// Keys returns the registered (not revoked) writers' public keys by ID. The map is never
// modified after it is returned (registration copies it), so it may be read
// concurrently; callers must not change it.
func (f *Folder) Keys() map[string]ed25519.PublicKey { return f.writers }

// Writers returns the registered (not revoked) writers' IDs and public
// keys (base64): what a checkpoint lists.
func (f *Folder) Writers() map[string]string {
	out := make(map[string]string, len(f.writers))
	for id, pub := range f.writers {
		out[id] = base64.StdEncoding.EncodeToString(pub)
	}
	return out
}

// Known returns every writer the ledger ever registered, revoked ones
// included (ID → base64 public key): what a checkpoint or base signed
// before a revocation may name.
func (f *Folder) Known() map[string]string {
	out := f.Writers()
	for id, r := range f.revoked {
		out[id] = r.PublicKey
	}
	return out
}

// Fold authenticates and links one message and returns its records, or a
// *Quarantine and leaves every chain's events as they were (the chain's
// Last still moves to the message: it is the chain's last message).
func (f *Folder) Fold(m Message) ([]event.Record, error) {
	return f.fold(m, nil)
}

// FoldAfter is Fold for a message read out of its stream (an export, an
// archive) without the messages quarantined before it: after is the stream
// sequence of its chain's previous message, which its signature names. It
// must lie between the chain's last message folded and the message itself;
// what was between is what the export left out.
func (f *Folder) FoldAfter(m Message, after uint64) ([]event.Record, error) {
	if m.Chain != Legacy {
		if after >= m.Seq || after < f.Chain(m.Chain).Last {
			f.through = max(f.through, m.Seq)
			return nil, &Quarantine{Seq: m.Seq, Chain: m.Chain, Writer: m.Writer, Reason: ErrBadSignature}
		}
		if cs := f.chains[m.Chain]; cs != nil {
			cs.Last = after
		} else if after > 0 {
			f.chains[m.Chain] = &ChainHead{Last: after}
		}
	}
	return f.fold(m, nil)
}

// FoldOwn folds a message this process published itself, whose events it
// holds decoded (evs, one per line of m.Data, as Decode would give them):
// the signature it made is not checked again and nothing is decoded, but
// every rule that depends on the ledger (registration, links) is.
func (f *Folder) FoldOwn(m Message, evs []*event.Event) ([]event.Record, error) {
	return f.fold(m, evs)
}

func (f *Folder) fold(m Message, evs []*event.Event) ([]event.Record, error) {
	f.through = max(f.through, m.Seq)
	q := func(reason error) error {
		return &Quarantine{Seq: m.Seq, Chain: m.Chain, Writer: m.Writer, Reason: reason}
	}
	if !ValidName(m.Chain) {
		return nil, q(ErrUnknownChain)
	}
	cs := f.chains[m.Chain]
	if cs == nil {
		cs = &ChainHead{}
		f.chains[m.Chain] = cs
	}
	prevSeq := cs.Last
	cs.Last = max(cs.Last, m.Seq)
	lines, err := event.SplitBatch(m.Data)
	if err != nil {
		return nil, q(&BrokenLinkError{Seq: m.Seq, Chain: m.Chain, Index: cs.NextIndex(), Expected: "a message of events", Found: err.Error()})
	}
	if evs != nil && len(evs) != len(lines) {
		evs = nil // not what the caller thinks it published: check it all
	}
	if err := f.authenticate(m, prevSeq, lines[0], evs != nil); err != nil {
		return nil, q(err)
	}
	linker := Linker{head: cs.head(m.Chain)}
	recs := make([]event.Record, 0, len(lines))
	for i, raw := range lines {
		// Decoding first links from the decoded event: JSON parsing is
		// most of a fold's cost, and an event is parsed once. An event
		// that does not decode is linked the slow way, so the reason it is
		// refused stays the first rule it breaks.
		var ev *event.Event
		var derr error
		if evs != nil {
			ev = evs[i]
		} else {
			ev, derr = event.Decode(raw)
		}
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
			return nil, q(&BrokenLinkError{Seq: m.Seq, Chain: m.Chain, Index: linker.head.Index, Expected: "a decodable event", Found: derr.Error()})
		}
		if ev.Chain != m.Chain {
			return nil, q(&BrokenLinkError{Seq: m.Seq, Chain: m.Chain, Index: ev.Index,
				Expected: fmt.Sprintf("an event of chain %q", m.Chain), Found: fmt.Sprintf("an event of chain %q", ev.Chain)})
		}
		rec := event.Record{Seq: m.Seq, Event: ev, Raw: raw, Hash: h, Pos: f.head.Count + uint64(i), Writer: m.Writer}
		if m.Chain != Legacy {
			rec.SignedAfter = prevSeq
		}
		recs = append(recs, rec)
	}
	lh := linker.head
	last := cs.Last
	*cs = ChainHead{Seq: lh.Seq, Index: lh.Index, Hash: lh.Hash, Count: lh.Count, Last: last}
	f.head = Head{Seq: m.Seq, Index: lh.Index, Hash: lh.Hash, Count: f.head.Count + uint64(len(recs)), Chain: m.Chain}
	f.apply(recs)
	return recs, nil
}

// authenticate applies the signature rules to m, whose chain's previous
// message is at stream sequence prevSeq and whose first event is first.
// own skips the signature check (FoldOwn), not the rules about who may
// sign.
func (f *Folder) authenticate(m Message, prevSeq uint64, first []byte, own bool) error {
	legacy := m.Chain == Legacy
	// A ledger that ever had a writer has one still (apply keeps the
	// last), but a revoked set alone is proof enough that it had one.
	none := len(f.writers) == 0 && len(f.revoked) == 0
	if legacy && m.Writer == "" && m.Signature == "" && none {
		return nil // a ledger from before writers signed
	}
	if m.Writer == "" || m.Signature == "" {
		return ErrUnsigned
	}
	if _, ok := f.revoked[m.Writer]; ok {
		return ErrRevokedWriter
	}
	pub, ok := f.writers[m.Writer]
	if !ok && none {
		pub, ok = selfRegistration(m.Writer, first)
	}
	if !ok {
		return ErrUnknownWriter
	}
	if id, data := DataWriter(m.Chain); data && id != m.Writer && !m.Imported {
		return ErrNotItsChain
	}
	if own {
		return nil
	}
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	if err != nil {
		return ErrBadSignature
	}
	if legacy && !writer.Verify(pub, m.Seq, m.Data, sig) || !legacy && !writer.VerifyAt(pub, m.Chain, prevSeq, m.Data, sig) {
		return ErrBadSignature
	}
	return nil
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

// Advance moves the legacy chain past records the caller linked itself (a
// writer's own committed batch on the legacy chain, stored at seq).
func (f *Folder) Advance(seq uint64, recs []event.Record) {
	last := recs[len(recs)-1]
	cs := f.chains[Legacy]
	if cs == nil {
		cs = &ChainHead{}
		f.chains[Legacy] = cs
	}
	*cs = ChainHead{Seq: seq, Index: last.Event.Index, Hash: last.Hash, Count: cs.Count + uint64(len(recs)), Last: max(cs.Last, seq)}
	for i := range recs {
		recs[i].Pos = f.head.Count + uint64(i)
	}
	f.head = Head{Seq: seq, Index: last.Event.Index, Hash: last.Hash, Count: f.head.Count + uint64(len(recs))}
	f.through = max(f.through, seq)
	f.apply(recs)
}

// apply registers and revokes the writers recs register and revoke, in
// order. Both maps are replaced, never changed in place (Keys, Revoked).
func (f *Folder) apply(recs []event.Record) {
	for _, r := range recs {
		switch b := r.Event.Body.(type) {
		case *event.WriterRegistered:
			f.registerWriter(b)
		case *event.WriterRevoked:
			f.revokeWriter(r, b)
		}
	}
}

// registerWriter adds wr's writer, unless it is registered already or was
// revoked: a revoked key never signs again (the operator registers a new
// one).
func (f *Folder) registerWriter(wr *event.WriterRegistered) {
	if _, dup := f.writers[wr.WriterID]; dup {
		return
	}
	if _, gone := f.revoked[wr.WriterID]; gone {
		return
	}
	if pub, err := writer.ParsePublic(wr.PublicKey); err == nil && writer.ID(pub) == wr.WriterID {
		f.writers = cloneWith(f.writers, wr.WriterID, pub)
	}
}

// revokeWriter removes wr's writer, recorded by r, unless it is not
// registered or is the last one left. The floor is the fold's, not only
// the API's: two instances revoking each other on different partitions, a
// restore, or a forger holding one key must never leave a ledger nobody
// may sign, or one whose next message may register itself.
func (f *Folder) revokeWriter(r event.Record, wr *event.WriterRevoked) {
	pub, ok := f.writers[wr.WriterID]
	if !ok || len(f.writers) < 2 {
		return
	}
	by := r.Writer
	if by == "" {
		by = wr.RevokedBy
	}
	writers := maps.Clone(f.writers)
	delete(writers, wr.WriterID)
	revoked := maps.Clone(f.revoked)
	if revoked == nil {
		revoked = map[string]Revocation{}
	}
	revoked[wr.WriterID] = Revocation{PublicKey: base64.StdEncoding.EncodeToString(pub), By: by,
		Seq: r.Seq, Chain: r.Event.Chain, Index: r.Event.Index, Pos: r.Pos}
	f.writers, f.revoked = writers, revoked
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
	Head        Head                  // the last valid event in stream order; Count: events on every chain
	Chains      map[string]ChainHead  // every chain's head, by name
	Writers     map[string]string     // registered, not revoked writers: ID → public key (base64)
	Revoked     map[string]Revocation // revoked writers, by ID
	Quarantined []*Quarantine         // every refused message, in stream order
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
	return Report{Head: f.Head(), Chains: f.Chains(), Writers: f.Writers(), Revoked: maps.Clone(f.revoked), Quarantined: qs}, err
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

// Heads follows every chain's head over accepted records in stream order:
// what a fold of records, not messages, knows (projections, archives). A
// chain's Last is its last accepted message; messages quarantined after it
// are the caller's to add (AddQuarantined).
type Heads map[string]ChainHead

// Add moves r's chain past r.
func (h Heads) Add(r event.Record) {
	c := h[r.Event.Chain]
	c.Seq, c.Index, c.Hash, c.Count = r.Seq, r.Event.Index, r.Hash, c.Count+1
	c.Last = max(c.Last, r.Seq)
	h[r.Event.Chain] = c
}

// AddQuarantined moves a chain's Last past a quarantined message.
func (h Heads) AddQuarantined(name string, seq uint64) {
	if !ValidName(name) {
		return
	}
	c := h[name]
	c.Last = max(c.Last, seq)
	h[name] = c
}

// Clone is a copy of h.
func (h Heads) Clone() Heads { return maps.Clone(h) }
