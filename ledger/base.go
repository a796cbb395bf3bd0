package ledger

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/internal/jsretry"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/segment"
	"github.com/keyledger/keyledger/ledger/writer"
)

// The base. Once an archived prefix of the ledger is removed, the live
// ledger starts at a segment.Base, stored in the KV bucket <Stream>_BASE
// signed by the writer that removed it, and named by the SegmentRemoved
// event that recorded the removal (written, and acknowledged, before the
// base is stored and the streams deleted). A base is only accepted with
// its event: Open fetches the event the record names and refuses a base
// it does not match; the fold from the base then authenticates and links
// that event like any other. Readers of the history start at the base.

const baseKey = "base"

// baseRecord is what the base bucket holds.
type baseRecord struct {
	Base       segment.Base `json:"base"`
	EventIndex uint64       `json:"eventIndex"` // the SegmentRemoved event
	EventSeq   uint64       `json:"eventSeq"`   // the stream sequence holding it
	// EventChain is the chain of the SegmentRemoved event ("": the legacy
	// chain) and EventAfter the stream sequence of the chain's message
	// before it, which its signature names.
	EventChain string `json:"eventChain,omitempty"`
	EventAfter uint64 `json:"eventAfter,omitempty"`
	// EventPos is the SegmentRemoved event's position (event.Record.Pos),
	// for an event not on the legacy chain (whose index is its position).
	EventPos uint64 `json:"eventPos,omitempty"`
	// Tree is the tiled Merkle tree's frontier at the base (its size is
	// Base.FirstIndex): with the tiles, which are never removed, it
	// continues the tree; CheckBaseTree checks it against Base.Frontier.
	Tree      merkle.Frontier `json:"tree"`
	Writer    string          `json:"writer"`
	PublicKey string          `json:"publicKey"`
	Signature string          `json:"signature"` // over signedBytes
}

// baseDomain keeps a base signature from ever passing as a message's.
const baseDomain = "keyledger-base/1\n"

func (r baseRecord) signedBytes() []byte {
	c := r
	c.Signature = ""
	b, _ := json.Marshal(c)
	return append([]byte(baseDomain), b...)
}

// BaseError means the stored base cannot be trusted.
type BaseError struct{ Reason string }

func (e *BaseError) Error() string {
	return "ledger: the stored base (where the live ledger starts after a removed segment) is refused: " + e.Reason
}

func (l *Ledger) baseBucket() string { return l.cfg.Stream + "_BASE" }

// hasBaseBucket reports whether a removal was ever recorded here.
func (l *Ledger) hasBaseBucket(ctx context.Context) bool {
	_, err := l.js.KeyValue(ctx, l.baseBucket())
	return err == nil
}

// loadBase reads and checks the stored base, if any.
func (l *Ledger) loadBase(ctx context.Context) error {
	kv, err := l.js.KeyValue(ctx, l.baseBucket())
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ledger: base bucket: %w", err)
	}
	e, err := kv.Get(ctx, baseKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ledger: base: %w", err)
	}
	var rec baseRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return &BaseError{Reason: "malformed"}
	}
	pub, err := writer.ParsePublic(rec.PublicKey)
	sig, serr := base64.StdEncoding.DecodeString(rec.Signature)
	if err != nil || serr != nil || writer.ID(pub) != rec.Writer || !ed25519.Verify(pub, rec.signedBytes(), sig) {
		return &BaseError{Reason: "its signature does not verify"}
	}
	if rec.Tree.Size != int64(rec.Base.FirstIndex) {
		return &BaseError{Reason: "its Merkle frontier is not at the base"}
	}
	// The key the record carries proves nothing by itself: it must be the
	// one that signed its SegmentRemoved message (checkBaseEvent), and
	// that it and the base's writers are the ledger's is checked against
	// an anchor outside the base (CheckBaseWriters; AuditAgainstFrom with
	// a checkpoint, whose fold authenticates the SegmentRemoved message).
	if err := l.checkBaseEvent(ctx, rec); err != nil {
		return err
	}
	l.base, l.baseTree = rec.Base, rec.Tree
	l.baseSigner = map[string]string{rec.Writer: rec.PublicKey}
	l.baseEventSeq = rec.EventSeq
	return nil
}

// checkBaseEvent refuses a base unless the event its record names is a
// SegmentRemoved that names exactly this base, after it.
func (l *Ledger) checkBaseEvent(ctx context.Context, rec baseRecord) error {
	b := rec.Base
	pos := rec.EventIndex
	if rec.EventChain != chain.Legacy {
		pos = rec.EventPos
	}
	if b.Empty() || rec.EventSeq <= b.Seq || pos < b.FirstIndex {
		return &BaseError{Reason: "it names no SegmentRemoved event after it"}
	}
	m, err := l.rawMsg(ctx, rec.EventSeq)
	if err != nil {
		return &BaseError{Reason: fmt.Sprintf("its SegmentRemoved event (index %d, stream sequence %d) cannot be read: %v", rec.EventIndex, rec.EventSeq, err)}
	}
	pub, _ := writer.ParsePublic(rec.PublicKey)
	sig, serr := base64.StdEncoding.DecodeString(m.Header.Get(writer.HeaderSignature))
	signed := serr == nil && m.Header.Get(writer.HeaderWriter) == rec.Writer
	if rec.EventChain == chain.Legacy {
		signed = signed && writer.Verify(pub, rec.EventSeq, m.Data, sig)
	} else {
		signed = signed && writer.VerifyAt(pub, rec.EventChain, rec.EventAfter, m.Data, sig)
	}
	if !signed || l.chainOf(m.Subject) != rec.EventChain {
		return &BaseError{Reason: fmt.Sprintf("its SegmentRemoved event (stream sequence %d) is not signed by the writer that signed the base", rec.EventSeq)}
	}
	lines, err := event.SplitBatch(m.Data)
	if err != nil {
		return &BaseError{Reason: "its SegmentRemoved event's message is malformed"}
	}
	for _, raw := range lines {
		ev, err := event.Decode(raw)
		if err != nil || ev.Index != rec.EventIndex || ev.Chain != rec.EventChain {
			continue
		}
		sr, ok := ev.Body.(*event.SegmentRemoved)
		if !ok || sr.NextIndex != b.FirstIndex || sr.LastHash != b.Prev || sr.Through != b.Seq {
			return &BaseError{Reason: fmt.Sprintf("event %d is not the SegmentRemoved event of this base", rec.EventIndex)}
		}
		return nil
	}
	return &BaseError{Reason: fmt.Sprintf("no event %d at stream sequence %d", rec.EventIndex, rec.EventSeq)}
}

// CheckBaseWriters refuses the base unless every writer it names is
// registered with the same key in trusted: the writers a fold from a
// snapshot this instance signed registered (start-up), or those a
// checkpoint verified with the deployment's key names. A base is signed
// by a writer it names itself, so without such an anchor whoever can
// write the base bucket could add their own key to the writers every
// fold from the base trusts.
// Without a removed prefix there is no base, and nothing to refuse.
func (l *Ledger) CheckBaseWriters(trusted map[string]string, anchor string) error {
	for id, pub := range l.baseSigner {
		if trusted[id] != pub {
			return &BaseError{Reason: fmt.Sprintf("it is signed by writer %s, which %s does not register", id, anchor)}
		}
	}
	return checkBaseWriters(l.base, trusted, anchor)
}

func checkBaseWriters(b segment.Base, trusted map[string]string, anchor string) error {
	for _, id := range slices.Sorted(maps.Keys(b.Writers)) {
		if trusted[id] != b.Writers[id] {
			return &BaseError{Reason: fmt.Sprintf("it names writer %s, which %s does not register", id, anchor)}
		}
	}
	return nil
}

// Base is where the live ledger starts: empty unless an archived segment
// was removed. It is for the archive and removal protocols (package
// segment), which record and compare bases; readers of the history ask
// FirstIndex, Folder, MemTree and TiledTree instead.
func (l *Ledger) Base() segment.Base { return l.base }

// FirstIndex is the index of the first event the live ledger holds: 0, or
// after removed segments the first event after them (the events before
// it are in the archives).
func (l *Ledger) FirstIndex() uint64 { return l.base.FirstIndex }

// FirstSeq is the first stream sequence of the live ledger: 1, or after
// removed segments the one after them.
func (l *Ledger) FirstSeq() uint64 { return l.base.Seq + 1 }

// Folder returns a fold positioned where the live ledger's messages
// (Messages) start: a new one, or after removed segments one holding the
// removed prefix's last event and registered writers.
func (l *Ledger) Folder() (*chain.Folder, error) { return l.baseFolder() }

// MemTree returns an in-memory Merkle tree of the events before the live
// ledger: empty, or after removed segments continued from their frontier.
// Appending every event Replay yields completes the ledger's tree.
func (l *Ledger) MemTree() (*merkle.MemTree, error) {
	t, err := l.base.Tree()
	if err != nil {
		return nil, &BaseError{Reason: err.Error()}
	}
	return t, nil
}

// TiledTree returns the tiled Merkle tree, over store, of the events
// before the live ledger: empty, or after removed segments continued from
// their frontier (the tiles under it are kept when segments are removed).
// CheckBaseTree checks such a tree against the base.
func (l *Ledger) TiledTree(store merkle.TileStore, cacheTiles int) (*merkle.Tree, error) {
	if l.baseTree.Size == 0 {
		return merkle.New(store, cacheTiles), nil
	}
	return merkle.Restore(l.baseTree, store, cacheTiles)
}

// CheckBaseTree refuses a tree continued from the base (TiledTree) whose
// root at the base is not the one the base's frontier gives. Without a
// removed prefix there is nothing to check.
func (l *Ledger) CheckBaseTree(root func(size int64) (tlog.Hash, error)) error {
	if l.base.Empty() {
		return nil
	}
	acc, err := baseAccumulator(l.base)
	if err != nil {
		return err
	}
	got, err := root(int64(l.base.FirstIndex))
	if err != nil || got != acc.rootNow() {
		return &BaseError{Reason: fmt.Sprintf("the Merkle tree continued from it does not have the base's root at size %d (%v)", l.base.FirstIndex, err)}
	}
	return nil
}

// StoreBase records base as where the live ledger starts, named by the
// SegmentRemoved event rec (already committed), signed by the ledger's
// writer key. Call it after the event is acknowledged and before any
// stream is deleted.
func (l *Ledger) StoreBase(ctx context.Context, base segment.Base, tree merkle.Frontier, removed event.Record) error {
	w := l.cfg.Writer
	if w == nil {
		return ErrNotRegistered
	}
	sr, ok := removed.Event.Body.(*event.SegmentRemoved)
	if !ok || sr.NextIndex != base.FirstIndex || sr.LastHash != base.Prev || sr.Through != base.Seq {
		return errors.New("ledger: the base does not match its SegmentRemoved event")
	}
	if tree.Size != int64(base.FirstIndex) {
		return errors.New("ledger: the Merkle frontier is not at the base")
	}
	rec := baseRecord{Base: base, EventIndex: removed.Event.Index, EventSeq: removed.Seq, EventChain: removed.Event.Chain,
		EventAfter: removed.SignedAfter, EventPos: removed.Pos, Tree: tree, Writer: w.ID(), PublicKey: w.PublicText()}
	rec.Signature = base64.StdEncoding.EncodeToString(w.SignRaw(rec.signedBytes()))
	raw, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	kv, err := jsretry.Do(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
		return l.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: l.baseBucket(), Description: "keyledger: where the live ledger starts after removed segments",
			History: 16, Storage: jetstream.FileStorage, Replicas: l.cfg.Replicas,
		})
	})
	if err != nil {
		return fmt.Errorf("ledger: base bucket: %w", err)
	}
	if _, err := kv.Put(ctx, baseKey, raw); err != nil {
		return fmt.Errorf("ledger: storing the base: %w", err)
	}
	l.base, l.baseTree = base, tree
	l.baseSigner = map[string]string{w.ID(): w.PublicText()}
	return nil
}

// DeleteSegmentsThrough deletes the segment streams whose messages all lie
// at or before the stored base's last removed sequence, and refuses unless
// that sequence ends a sealed segment exactly.
func (l *Ledger) DeleteSegmentsThrough(ctx context.Context) ([]string, error) {
	if l.base.Empty() {
		return nil, errors.New("ledger: no base is stored: record the removal first")
	}
	if err := l.refreshSegments(ctx); err != nil {
		return nil, err
	}
	var victims []*segStream
	for _, s := range l.segs.list() {
		if s.first > l.base.Seq {
			break
		}
		if !s.sealed || s.last > l.base.Seq {
			return nil, fmt.Errorf("ledger: the base (stream sequence %d) does not end segment %s (%d–…)", l.base.Seq, s.name, s.first)
		}
		victims = append(victims, s)
	}
	var names []string
	for _, s := range victims {
		if err := l.js.DeleteStream(ctx, s.name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return names, fmt.Errorf("ledger: deleting %s: %w", s.name, err)
		}
		names = append(names, s.name)
	}
	return names, l.refreshSegments(ctx)
}

// baseFolder is the folder a fold from the base starts with.
func (l *Ledger) baseFolder() (*chain.Folder, error) {
	f, err := l.base.Folder()
	if err != nil {
		return nil, &BaseError{Reason: err.Error()}
	}
	return f, nil
}

// baseAccumulator is a rootAccumulator continued from the base's frontier.
func baseAccumulator(b segment.Base) (rootAccumulator, error) {
	acc := rootAccumulator{n: int64(b.FirstIndex)}
	for _, s := range b.Frontier {
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(raw) != tlog.HashSize {
			return acc, &BaseError{Reason: "malformed frontier"}
		}
		var h tlog.Hash
		copy(h[:], raw)
		acc.stack = append(acc.stack, h)
	}
	return acc, nil
}

// CheckBaseRevoked is CheckBaseWriters against a fold that knows where
// each writer was revoked (start-up's, resumed from this instance's own
// snapshot): live are its writers (ID → base64 public key), revoked its
// revocations. The base's signer and writers must be live, or revoked
// only after they signed the removal and after the base; the base must
// carry exactly the revocations before it. A revoked key cannot sign a
// base that brings it back, nor one that drops or adds a revocation.
func (l *Ledger) CheckBaseRevoked(live map[string]string, revoked map[string]chain.Revocation, anchor string) error {
	if l.base.Empty() {
		return nil
	}
	liveAt := func(id, pub string, seq uint64) bool {
		if live[id] == pub {
			return true
		}
		r, ok := revoked[id]
		return ok && r.PublicKey == pub && r.Seq > seq
	}
	for id, pub := range l.baseSigner {
		if !liveAt(id, pub, l.baseEventSeq) {
			return &BaseError{Reason: fmt.Sprintf("it is signed by writer %s, which %s does not register, or revoked before the removal", id, anchor)}
		}
	}
	b := l.base
	for _, id := range slices.Sorted(maps.Keys(b.Writers)) {
		if !liveAt(id, b.Writers[id], b.Seq) {
			return &BaseError{Reason: fmt.Sprintf("it names writer %s, which %s does not register, or revoked before the base", id, anchor)}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(revoked)) {
		r := revoked[id]
		got, ok := b.Revoked[id]
		if r.Seq <= b.Seq && (!ok || got.PublicKey != r.PublicKey || got.Seq != r.Seq) {
			return &BaseError{Reason: fmt.Sprintf("it does not name writer %s as revoked, which %s revoked before the base", id, anchor)}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(b.Revoked)) {
		if r, ok := revoked[id]; !ok || r.Seq > b.Seq {
			return &BaseError{Reason: fmt.Sprintf("it names writer %s as revoked, which %s did not revoke before the base", id, anchor)}
		}
	}
	return nil
}
