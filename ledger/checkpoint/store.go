package checkpoint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/internal/jsretry"
	"github.com/keyledger/keyledger/ledger/internal/streamname"
	"github.com/keyledger/keyledger/ledger/merkle"
)

// Store keeps signed checkpoints of the ledger's Merkle tree beside the
// ledger, thinned (see Thinning): every checkpoint of the recent window in
// the stream <Stream>_CHECKPOINTS_RECENT, which forgets them by age, and
// one per Thinning.Every plus every one kept on purpose (Keep) in
// <Stream>_CHECKPOINTS, kept for good. Both deny deletes and purges (a
// setting nats-server never lets anyone turn off); only age removes a
// recent checkpoint.
type Store struct {
	js      jetstream.JetStream
	stream  jetstream.Stream // kept for good
	recent  jetstream.Stream // nil: an older deployment's, read-only
	subject string
	thin    Thinning

	mu       sync.Mutex
	lastKept time.Time // when the newest kept checkpoint was stored; zero: not read yet
}

// Thinning says which checkpoints are kept for good. A checkpoint is
// stored every second while the ledger grows (gateway/node), about 10 GB a
// year kept whole; what needs them needs far fewer:
//
//   - start-up and audit verify check the ledger extends the newest one,
//     which is in the recent window (or kept: the one signed at shutdown
//     is, see Checkpointer.Final);
//   - witnesses check each new checkpoint against the last one they saw
//     with a consistency proof from the tiles, never from stored
//     checkpoints, so a witness that was away longer than the window
//     still checks the newest one against what it saw; what it cannot see
//     are the checkpoints signed while it was away and since thinned (one
//     an hour remains): to catch a split view shown to others meanwhile it
//     compares notes with other witnesses;
//   - inclusion and consistency proofs come from the tiles, which are not
//     thinned;
//   - an archive, the base of a pruned ledger and a backup carry the
//     checkpoint they rest on; prune keeps the archive's (Keep), so the
//     checkpoint a SegmentRemoved event names stays stored.
type Thinning struct {
	Recent time.Duration // every checkpoint this young is kept
	Every  time.Duration // older ones: one per Every
}

// DefaultThinning keeps three days of checkpoints whole (a long weekend
// down after a crash still starts against the newest) and one an hour
// after: about 9,000 a year instead of 31 million.
var DefaultThinning = Thinning{Recent: 72 * time.Hour, Every: time.Hour}

// ErrNone means no checkpoint has been stored yet (or, from OpenExisting,
// that there is no checkpoint stream).
var ErrNone = errors.New("checkpoint: none stored yet")

func streamName(ledgerStream string) string { return ledgerStream + "_CHECKPOINTS" }
func subject(ledgerStream string) string    { return "keyledger.checkpoints." + ledgerStream }

// RecentStream is the stream of the recent window's checkpoints of a
// ledger stream (readers that are granted streams by name need it).
func RecentStream(ledgerStream string) string { return streamName(ledgerStream) + "_RECENT" }

func recentSubject(ledgerStream string) string { return subject(ledgerStream) + ".recent" }

// Open creates or opens the checkpoint streams of a ledger stream, thinned
// by DefaultThinning.
func Open(ctx context.Context, nc *nats.Conn, ledgerStream string, replicas int) (*Store, error) {
	return OpenThinned(ctx, nc, ledgerStream, replicas, DefaultThinning)
}

// OpenThinned is Open with another Thinning.
func OpenThinned(ctx context.Context, nc *nats.Conn, ledgerStream string, replicas int, thin Thinning) (*Store, error) {
	ledgerStream = streamname.Or(ledgerStream)
	if replicas == 0 {
		replicas = 1
	}
	if thin.Recent <= 0 || thin.Every <= 0 {
		thin = DefaultThinning
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	create := func(cfg jetstream.StreamConfig) (jetstream.Stream, error) {
		cfg.Storage, cfg.Replicas, cfg.DenyDelete, cfg.DenyPurge, cfg.AllowDirect = jetstream.FileStorage, replicas, true, true, true
		return jsretry.Do(ctx, func(ctx context.Context) (jetstream.Stream, error) { return js.CreateOrUpdateStream(ctx, cfg) })
	}
	stream, err := create(jetstream.StreamConfig{
		Name:        streamName(ledgerStream),
		Description: "keyledger: signed checkpoints (C2SP tlog-checkpoint) of the ledger's Merkle tree, kept for good (thinned)",
		Subjects:    []string{subject(ledgerStream)},
		Duplicates:  time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint: stream: %w", err)
	}
	recent, err := create(jetstream.StreamConfig{
		Name:        RecentStream(ledgerStream),
		Description: "keyledger: the recent window's signed checkpoints, forgotten by age",
		Subjects:    []string{recentSubject(ledgerStream)},
		MaxAge:      thin.Recent,
		Duplicates:  min(time.Minute, thin.Recent),
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint: stream: %w", err)
	}
	return &Store{js: js, stream: stream, recent: recent, subject: subject(ledgerStream), thin: thin}, nil
}

// OpenExisting opens the checkpoint streams of a ledger stream without
// creating or changing them (what a subscribe-only audit identity may do).
// ErrNone means there is no such stream. A deployment from before
// thinning has no recent stream; its checkpoints are all kept.
func OpenExisting(ctx context.Context, nc *nats.Conn, ledgerStream string) (*Store, error) {
	ledgerStream = streamname.Or(ledgerStream)
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	stream, err := js.Stream(ctx, streamName(ledgerStream))
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, ErrNone
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint: stream: %w", err)
	}
	s := &Store{js: js, stream: stream, subject: subject(ledgerStream)}
	switch recent, err := js.Stream(ctx, RecentStream(ledgerStream)); {
	case err == nil:
		s.recent = recent
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, fmt.Errorf("checkpoint: stream: %w", err)
	}
	return s, nil
}

// Put stores a signed checkpoint: kept for good if none was kept for
// Thinning.Every, else in the recent window.
func (s *Store) Put(ctx context.Context, signed []byte) error {
	if s.recent == nil {
		return s.Keep(ctx, signed)
	}
	due, err := s.keepDue(ctx)
	if err != nil {
		return err
	}
	if due {
		return s.Keep(ctx, signed)
	}
	_, err = s.js.Publish(ctx, s.subject+".recent", signed)
	return err
}

// Keep stores a signed checkpoint for good: one something else refers to
// (the archive a prune removes, the last before a shutdown).
func (s *Store) Keep(ctx context.Context, signed []byte) error {
	if _, err := s.js.Publish(ctx, s.subject, signed); err != nil {
		return err
	}
	s.mu.Lock()
	s.lastKept = time.Now()
	s.mu.Unlock()
	return nil
}

// keepDue reports whether no checkpoint was kept for Thinning.Every.
func (s *Store) keepDue(ctx context.Context) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastKept.IsZero() {
		m, err := s.stream.GetLastMsgForSubject(ctx, s.subject)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			return true, nil
		case err != nil:
			return false, err
		}
		s.lastKept = m.Time
	}
	return time.Since(s.lastKept) >= s.thin.Every, nil
}

// streams are the streams to read, kept first.
func (s *Store) streams() []jetstream.Stream {
	if s.recent == nil {
		return []jetstream.Stream{s.stream}
	}
	return []jetstream.Stream{s.stream, s.recent}
}

// Latest returns the newest signed checkpoint: of the newest kept and
// the newest recent one, the larger (unverified), or the later stored.
func (s *Store) Latest(ctx context.Context) ([]byte, error) {
	var best []byte
	bestSize := int64(-2)
	var bestTime time.Time
	for _, st := range s.streams() {
		info, err := st.Info(ctx)
		if err != nil {
			return nil, err
		}
		if info.State.Msgs == 0 {
			continue
		}
		m, err := st.GetMsg(ctx, info.State.LastSeq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if size := sizeOf(m.Data); size > bestSize || size == bestSize && m.Time.After(bestTime) {
			best, bestSize, bestTime = m.Data, size, m.Time
		}
	}
	if best == nil {
		return nil, ErrNone
	}
	return best, nil
}

// sizeOf is a signed checkpoint's tree size, read without checking its
// signature (for ordering only); -1 if it cannot be read.
func sizeOf(signed []byte) int64 {
	cp, err := unverified(signed)
	if err != nil {
		return -1
	}
	return cp.Size
}

// Count returns how many checkpoints are stored, kept and recent.
func (s *Store) Count(ctx context.Context) (uint64, error) {
	var n uint64
	for _, st := range s.streams() {
		info, err := st.Info(ctx)
		if err != nil {
			return 0, err
		}
		n += info.State.Msgs
	}
	return n, nil
}

// All returns every stored checkpoint in Reader's order. Its memory grows
// with history: prefer Reader.
func (s *Store) All(ctx context.Context) ([][]byte, error) {
	next, err := s.Reader(ctx)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for {
		signed, err := next(ctx)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, signed)
	}
}

// Reader returns a function that yields the checkpoints stored when it
// was called, one at a time, then io.EOF: the kept and the recent ones
// merged by tree size (each stream in stored order), so a reader that
// walks the ledger meets them as it passes their sizes.
func (s *Store) Reader(ctx context.Context) (func(context.Context) ([]byte, error), error) {
	var rs []*streamReader
	for _, st := range s.streams() {
		info, err := st.Info(ctx)
		if err != nil {
			return nil, err
		}
		r := &streamReader{stream: st, seq: info.State.FirstSeq, last: info.State.LastSeq}
		if info.State.Msgs == 0 {
			r.seq, r.last = 1, 0
		}
		rs = append(rs, r)
	}
	return func(ctx context.Context) ([]byte, error) {
		var pick *streamReader
		for _, r := range rs {
			if err := r.fill(ctx); err != nil {
				return nil, err
			}
			if r.head != nil && (pick == nil || r.size < pick.size) {
				pick = r
			}
		}
		if pick == nil {
			return nil, io.EOF
		}
		signed := pick.head
		pick.head = nil
		return signed, nil
	}, nil
}

// streamReader reads one stream's messages in order, one ahead.
type streamReader struct {
	stream    jetstream.Stream
	seq, last uint64
	head      []byte // the next message, once read
	size      int64  // its tree size (sizeOf)
}

func (r *streamReader) fill(ctx context.Context) error {
	for r.head == nil && r.seq <= r.last {
		m, err := r.stream.GetMsg(ctx, r.seq)
		r.seq++
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // aged out of the recent window meanwhile
		}
		if err != nil {
			return err
		}
		r.head, r.size = m.Data, sizeOf(m.Data)
	}
	return nil
}

// newestSearch bounds how far back Newest looks for a checkpoint its key
// verifies (instances sharing a ledger may each sign with their own key).
const newestSearch = 64

// Newest returns the newest stored checkpoint that verifies with vkey (a
// note verifier key) — of the newest few kept and recent ones, the
// largest, of equal sizes the later stored — and how many newer ones did
// not verify (another instance's key, or forged). With vkey "" it is
// taken unverified, which can only cause a false alarm, never hide a
// truncation. ErrNone means none is stored, or none of the newest few
// verifies.
func (s *Store) Newest(ctx context.Context, vkey string) (cp merkle.Checkpoint, skipped int, err error) {
	found := false
	var at time.Time
	for _, st := range s.streams() {
		c, t, n, err := newestIn(ctx, st, vkey)
		skipped += n
		if errors.Is(err, ErrNone) {
			continue
		}
		if err != nil {
			return cp, skipped, err
		}
		if !found || c.Size > cp.Size || c.Size == cp.Size && t.After(at) {
			cp, at, found = c, t, true
		}
	}
	if !found {
		return cp, skipped, ErrNone
	}
	return cp, skipped, nil
}

// newestIn is Newest in one stream.
func newestIn(ctx context.Context, st jetstream.Stream, vkey string) (cp merkle.Checkpoint, at time.Time, skipped int, err error) {
	info, err := st.Info(ctx)
	if err != nil {
		return cp, at, 0, err
	}
	if info.State.Msgs == 0 {
		return cp, at, 0, ErrNone
	}
	for seq := info.State.LastSeq; seq >= info.State.FirstSeq && seq > 0 && skipped < newestSearch; seq-- {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return cp, at, skipped, err
		}
		if vkey == "" {
			cp, err = unverified(m.Data)
		} else {
			cp, err = merkle.Open(m.Data, vkey)
		}
		if err == nil {
			return cp, m.Time, skipped, nil
		}
		skipped++
	}
	return cp, at, skipped, ErrNone
}

// unverified reads a signed note's checkpoint without checking the
// signature.
func unverified(signed []byte) (merkle.Checkpoint, error) {
	text, _, ok := bytes.Cut(signed, []byte("\n\n"))
	if !ok {
		return merkle.Checkpoint{}, errors.New("checkpoint: malformed signed checkpoint")
	}
	return merkle.ParseBody(string(text) + "\n")
}
