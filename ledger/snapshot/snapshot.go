// Package snapshot stores snapshots of keyledger's projections in JetStream
// (an object store beside the ledger stream, replicated like it), so an
// instance starts from the newest snapshot and folds only the ledger's tail.
//
// A snapshot is opaque bytes (the projections' own encoding) behind a
// header that names what it covers: the ledger stream, the index, stream
// sequence and hash of the last event folded into it. The header carries
// the SHA-256 of the body and is signed by the writer key of the instance
// that took it, for stream sequence 0 (never a ledger message's place, so a
// snapshot signature cannot pass for a ledger message's). Stored bytes:
//
//	header JSON "\n" body
//
// Snapshots are derived state and never trusted over the ledger: Load
// refuses a snapshot that is truncated, corrupt, of another ledger or not
// signed by a trusted key, and the caller checks that the event it covers
// is still the ledger's event at that index before using it.
//
// Snapshots serve start-up (the newest) and time travel (the newest at or
// before a time), so old ones are thinned, not all dropped: Thin keeps the
// newest few, then the first of each of the most recent hours, days, weeks
// and months (Retention), a set bounded in count whatever the history's length.
// Losing a snapshot costs only time: start-up or a time-travel answer folds
// from an older one, or from the first event.
//
// A Store is safe for concurrent use.
package snapshot

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/internal/jsretry"
	"github.com/keyledger/keyledger/ledger/internal/streamname"
	"github.com/keyledger/keyledger/ledger/writer"
)

// Format names the header layout.
const Format = "keyledger-snapshot/1"

// Why a stored snapshot is refused.
var (
	ErrCorrupt   = errors.New("snapshot: corrupt or truncated")
	ErrForeign   = errors.New("snapshot: of another ledger")
	ErrUntrusted = errors.New("snapshot: not signed by a trusted writer key")
)

// Header says what a snapshot covers.
type Header struct {
	Format     string    `json:"format"`
	Ledger     string    `json:"ledger"` // the ledger stream's name
	Index      uint64    `json:"index"`  // the last event folded in: its index on its chain
	Seq        uint64    `json:"seq"`    // its stream sequence
	Hash       string    `json:"hash"`   // its hash
	Count      uint64    `json:"count"`  // events folded in
	Taken      time.Time `json:"taken"`
	EventTime  time.Time `json:"eventTime"` // the latest time of any event folded in (time travel)
	BodySHA256 string    `json:"bodySha256"`
	Writer     string    `json:"writer"`
	Signature  string    `json:"signature"` // base64 Ed25519 over the header with this field empty
}

// Pos is the covered event's position in the ledger (its place in stream
// order, on every chain: event.Record.Pos). A ledger with only the legacy
// chain has Pos == Index.
func (h Header) Pos() uint64 {
	if h.Count == 0 {
		return h.Index
	}
	return h.Count - 1
}

// EventHash is the covered event's hash.
func (h Header) EventHash() (event.Hash, error) {
	var out event.Hash
	b, err := hex.DecodeString(h.Hash)
	if err != nil || len(b) != len(out) {
		return out, ErrCorrupt
	}
	copy(out[:], b)
	return out, nil
}

func (h Header) signedBytes() []byte {
	h.Signature = ""
	b, _ := json.Marshal(h)
	return b
}

// Info names a stored snapshot.
type Info struct {
	Name string
	Pos  uint64 // of the covered event (Header.Pos), from the name
	// EventTime is the header's, as the object's metadata repeats it
	// (unsigned: for choosing only; Load checks the header). Zero when the
	// snapshot does not say (older snapshots).
	EventTime time.Time
}

// eventTimeMeta is the object metadata key repeating Header.EventTime.
const eventTimeMeta = "event-time"

// Store keeps the snapshots of one ledger stream. It writes through
// nats.go's object store and reads with direct gets only (read.go).
type Store struct {
	obj    jetstream.ObjectStore
	ledger string
	nc     *nats.Conn
	bucket string           // the object store bucket
	stream string           // its stream
	meta   jetstream.Stream // its stream, for last-message-for-subject gets
}

func newStore(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, obj jetstream.ObjectStore, ledgerStream string) (*Store, error) {
	bucket := ledgerStream + "_SNAPSHOTS"
	st, err := js.Stream(ctx, "OBJ_"+bucket)
	if err != nil {
		return nil, fmt.Errorf("snapshot: bucket: %w", err)
	}
	return &Store{obj: obj, ledger: ledgerStream, nc: nc, bucket: bucket, stream: "OBJ_" + bucket, meta: st}, nil
}

// Open creates or opens the snapshot bucket of a ledger stream.
func Open(ctx context.Context, nc *nats.Conn, ledgerStream string, replicas int) (*Store, error) {
	ledgerStream = streamname.Or(ledgerStream)
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	obj, err := jsretry.Do(ctx, func(ctx context.Context) (jetstream.ObjectStore, error) {
		return js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket:      ledgerStream + "_SNAPSHOTS",
			Description: "keyledger: snapshots of the projections of ledger " + ledgerStream,
			Storage:     jetstream.FileStorage,
			Replicas:    max(replicas, 1),
		})
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot: bucket: %w", err)
	}
	return newStore(ctx, js, nc, obj, ledgerStream)
}

// ErrNone means a ledger has no snapshot bucket (none was ever taken).
var ErrNone = errors.New("snapshot: no snapshots of this ledger")

// OpenExisting opens the snapshot bucket of a ledger stream without
// creating it (readers: a stopped server's data directory, an audit
// identity); ErrNone when there is none.
func OpenExisting(ctx context.Context, nc *nats.Conn, ledgerStream string) (*Store, error) {
	ledgerStream = streamname.Or(ledgerStream)
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	obj, err := js.ObjectStore(ctx, ledgerStream+"_SNAPSHOTS")
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, ErrNone
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot: bucket: %w", err)
	}
	return newStore(ctx, js, nc, obj, ledgerStream)
}

// Name is the object name of the snapshot covering the event at position
// pos (Header.Pos): zero-padded, so names sort by position. (A snapshot of
// a ledger with only the legacy chain is named by its index, the same.)
func Name(pos uint64) string { return fmt.Sprintf("%020d", pos) }

// Put signs h (Format, Ledger, BodySHA256, Writer and Signature are filled
// in) and stores it with body.
func (s *Store) Put(ctx context.Context, h Header, body []byte, key *writer.Key) error {
	sum := sha256.Sum256(body)
	h.Format, h.Ledger, h.BodySHA256, h.Writer = Format, s.ledger, hex.EncodeToString(sum[:]), key.ID()
	h.Signature = base64.StdEncoding.EncodeToString(key.Sign(0, h.signedBytes()))
	head, err := json.Marshal(h)
	if err != nil {
		return err
	}
	data := make([]byte, 0, len(head)+1+len(body))
	data = append(append(append(data, head...), '\n'), body...)
	_, err = s.obj.Put(ctx, jetstream.ObjectMeta{Name: Name(h.Pos()),
		Metadata: map[string]string{eventTimeMeta: h.EventTime.UTC().Format(time.RFC3339Nano)}}, bytes.NewReader(data))
	return err
}

// PutRaw stores bytes under a name as they are (tests use it to plant
// damaged snapshots).
func (s *Store) PutRaw(ctx context.Context, name string, data []byte) error {
	_, err := s.obj.PutBytes(ctx, name, data)
	return err
}

// List names the stored snapshots, newest (highest position) first.
func (s *Store) List(ctx context.Context) ([]Info, error) {
	objs, err := s.infos(ctx)
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, o := range objs {
		idx, err := strconv.ParseUint(o.Name, 10, 64)
		if err != nil {
			continue // not a snapshot; Load would refuse it anyway
		}
		info := Info{Name: o.Name, Pos: idx}
		if t, err := time.Parse(time.RFC3339Nano, o.Metadata[eventTimeMeta]); err == nil {
			info.EventTime = t
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b Info) int { return cmpUint(b.Pos, a.Pos) })
	return out, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Load reads and checks one snapshot: whole, of this ledger, its body
// matching its digest, signed by a key trusted returns (nil: untrusted).
func (s *Store) Load(ctx context.Context, name string, trusted func(writerID string) ed25519.PublicKey) (Header, []byte, error) {
	data, err := s.get(ctx, name)
	if err != nil {
		if errors.Is(err, jetstream.ErrDigestMismatch) {
			return Header{}, nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		return Header{}, nil, err
	}
	return Check(data, s.ledger, trusted)
}

// Check verifies stored snapshot bytes and splits them.
func Check(data []byte, ledger string, trusted func(writerID string) ed25519.PublicKey) (Header, []byte, error) {
	head, body, ok := bytes.Cut(data, []byte("\n"))
	var h Header
	if !ok || json.Unmarshal(head, &h) != nil || h.Format != Format {
		return Header{}, nil, ErrCorrupt
	}
	if h.Ledger != ledger {
		return h, nil, fmt.Errorf("%w (%q, not %q)", ErrForeign, h.Ledger, ledger)
	}
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != h.BodySHA256 {
		return h, nil, fmt.Errorf("%w: body digest does not match", ErrCorrupt)
	}
	if _, err := h.EventHash(); err != nil {
		return h, nil, err
	}
	sig, err := base64.StdEncoding.DecodeString(h.Signature)
	pub := trusted(h.Writer)
	if pub == nil {
		return h, nil, fmt.Errorf("%w (writer %q)", ErrUntrusted, h.Writer)
	}
	if err != nil || !writer.Verify(pub, 0, h.signedBytes(), sig) {
		return h, nil, fmt.Errorf("%w: the signature does not verify", ErrUntrusted)
	}
	return h, body, nil
}

// AtOrBefore lists the snapshots whose events all happened at or before t
// (by their metadata; those that do not say are included, for Load to
// decide), newest first.
func (s *Store) AtOrBefore(ctx context.Context, t time.Time) ([]Info, error) {
	list, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(list, func(i Info) bool { return i.EventTime.After(t) }), nil
}

// Retention says which snapshots Thin keeps: the Recent newest, and the
// first snapshot (by event time) of each of the Hourly most recent hours,
// Daily most recent UTC days, Weekly most recent ISO weeks and Monthly most
// recent months that hold one. At most Recent+Hourly+Daily+Weekly+Monthly
// are kept. Event times grow with
// the index and a bucket only ever leaves the most recent, so a snapshot
// once dropped is never wanted again.
type Retention struct {
	Recent, Hourly, Daily, Weekly, Monthly int
}

// Keep returns the snapshots r keeps of list (newest first, as List
// returns them).
func (r Retention) Keep(list []Info) []Info {
	keep := map[string]bool{}
	for i, info := range list {
		if i < r.Recent {
			keep[info.Name] = true
		}
	}
	buckets := []struct {
		n   int
		key func(time.Time) string
	}{
		{r.Hourly, func(t time.Time) string { return t.UTC().Format("2006-01-02T15") }},
		{r.Daily, func(t time.Time) string { return t.UTC().Format("2006-01-02") }},
		{r.Weekly, func(t time.Time) string { y, w := t.UTC().ISOWeek(); return fmt.Sprintf("%d-W%02d", y, w) }},
		{r.Monthly, func(t time.Time) string { return t.UTC().Format("2006-01") }},
	}
	for _, b := range buckets {
		first := map[string]Info{} // bucket → its first snapshot
		var order []string         // buckets, newest first
		for _, info := range list {
			if info.EventTime.IsZero() {
				continue // unknown time: kept only as one of the newest
			}
			k := b.key(info.EventTime)
			prev, seen := first[k]
			if !seen {
				order = append(order, k)
			}
			if !seen || info.Pos < prev.Pos {
				first[k] = info
			}
		}
		for i, k := range order {
			if i < b.n {
				keep[first[k].Name] = true
			}
		}
	}
	return slices.DeleteFunc(slices.Clone(list), func(i Info) bool { return !keep[i.Name] })
}

// Thin deletes the snapshots r does not keep.
func (s *Store) Thin(ctx context.Context, r Retention) error {
	list, err := s.List(ctx)
	if err != nil {
		return err
	}
	kept := map[string]bool{}
	for _, info := range r.Keep(list) {
		kept[info.Name] = true
	}
	for _, info := range list {
		if kept[info.Name] {
			continue
		}
		if err := s.obj.Delete(ctx, info.Name); err != nil {
			return err
		}
	}
	return nil
}

// Raw returns a stored snapshot's bytes unchecked (tests).
func (s *Store) Raw(ctx context.Context, name string) ([]byte, error) {
	return s.get(ctx, name)
}
