package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/internal/jsretry"
)

// Segments. The ledger is a run of streams, one per segment, the chain
// continuing across them: segment 0 is cfg.Stream on cfg.Subject (every
// data directory from before segments keeps working unchanged), segment n
// is cfg.Stream_n on cfg.Subject.n, created with FirstSeq = the previous
// segment's last sequence + 1, so stream sequences are one sequence space
// across segments (writer signatures, quarantines, snapshots and
// checkpoints all speak it). Removing an archived segment deletes a whole
// old stream; nats-server refuses to turn deny_purge off on a stream, so a
// purge of the live one cannot do it.
//
// Rolling (at a group-commit boundary, on the writer goroutine): seal the
// current stream (a sealed stream takes no message, so a writer that has
// not seen the roll cannot fork the sequence there: its publish is refused
// and it looks for the next segment), fold what it holds, then create the
// next one. Creating is idempotent: two instances rolling at once create
// the same stream with the same config. Readers find segments by listing
// the streams on cfg.Subject.*; a sequence gap between segments, or a
// reader asking for sequences no segment holds, is an error naming them,
// never a silent skip.

// segment is one stream of the ledger.
type segStream struct {
	n       int
	name    string
	subject string
	stream  jetstream.Stream
	first   uint64 // the first stream sequence it holds
	last    uint64 // its last sequence once sealed
	sealed  bool
	created time.Time
	// bytes is what it held when last asked (JetStream's count, for
	// SegmentBytes): updated by every look at the stream's end.
	bytes atomic.Uint64
}

// segmentSet is the ledger's segments, in order; the last is the one
// written to.
type segmentSet struct {
	mu   sync.RWMutex
	segs []*segStream
}

func (s *segmentSet) list() []*segStream {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.segs)
}

// set replaces the segments with a newer look, but never with one that
// ends in an earlier segment: two looks run at once (the writer's roll, a
// reader of the stream's end), and the slower may have listed the streams
// before the roll created the next one. Going back to the sealed segment
// would have the writer find it due again.
func (s *segmentSet) set(segs []*segStream) {
	s.mu.Lock()
	if n := len(s.segs); n == 0 || segs[len(segs)-1].n >= s.segs[n-1].n {
		s.segs = segs
	}
	s.mu.Unlock()
}

func (s *segmentSet) current() *segStream {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.segs) == 0 {
		return nil
	}
	return s.segs[len(s.segs)-1]
}

// Segment metadata on every segment stream after the first; the number of
// control partitions on every segment stream written by this build.
const (
	metaSegment    = "keyledger-segment"
	metaFirstSeq   = "keyledger-first-seq"
	metaPartitions = "keyledger-partitions"
)

// chainSubjects are the subjects a segment stream takes besides its own
// (the legacy chain's): the writers' data chains and the control chains.
func chainSubjects(subject string) []string {
	return []string{subject, subject + ".w.*", subject + ".c.*"}
}

// chainSubject is the subject of chain name in segment s.
func chainSubject(s *segStream, name string) string {
	if name == chain.Legacy {
		return s.subject
	}
	return s.subject + "." + name
}

// chainOf names the chain a message stored on subject is on:
// <Subject>[.<n>] is the legacy chain, <Subject>[.<n>].w.<id> and
// <Subject>[.<n>].c.<p> are chains "w.<id>" and "c.<p>". Anything else is
// no chain (the fold quarantines it).
func (l *Ledger) chainOf(subject string) string {
	rest, ok := strings.CutPrefix(subject, l.cfg.Subject)
	if !ok {
		return "?" + subject
	}
	if rest == "" {
		return chain.Legacy
	}
	if rest[0] != '.' {
		return "?" + subject
	}
	toks := strings.Split(rest[1:], ".")
	if n, err := strconv.Atoi(toks[0]); err == nil && n > 0 && strconv.Itoa(n) == toks[0] {
		toks = toks[1:] // segment n
	}
	switch {
	case len(toks) == 0:
		return chain.Legacy
	case len(toks) == 2 && (toks[0] == "w" || toks[0] == "c"):
		return toks[0] + "." + toks[1]
	}
	return "?" + subject
}

func (l *Ledger) segmentName(n int) (name, subject string) {
	if n == 0 {
		return l.cfg.Stream, l.cfg.Subject
	}
	return fmt.Sprintf("%s_%d", l.cfg.Stream, n), fmt.Sprintf("%s.%d", l.cfg.Subject, n)
}

// segmentConfig is the stream config of segment n starting at first.
func (l *Ledger) segmentConfig(n int, first uint64) jetstream.StreamConfig {
	name, subject := l.segmentName(n)
	sc := jetstream.StreamConfig{
		Name:        name,
		Description: "keyledger: hash-chained ledger of every key operation",
		Subjects:    chainSubjects(subject),
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    l.cfg.Replicas,
		Discard:     jetstream.DiscardNew,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		MaxAge:      0,
		Duplicates:  dedupeWindow,
		DenyDelete:  true,
		DenyPurge:   true,
		AllowDirect: true,
		Compression: jetstream.S2Compression,
		// A change that depends on several control chains is one atomic
		// batch (change.go). (With it, nats-server reads a single-replica
		// stream's last message when it starts, to finish a batch a crash
		// cut: the last block is then in its cache for a while.)
		AllowAtomicPublish: true,
		Metadata:           map[string]string{metaPartitions: strconv.Itoa(chain.Partitions)},
	}
	if l.cfg.Uncompressed {
		sc.Compression = jetstream.NoCompression
	}
	if n > 0 {
		sc.Description = fmt.Sprintf("keyledger: ledger segment %d, from stream sequence %d", n, first)
		sc.FirstSeq = first
		sc.Metadata[metaSegment] = strconv.Itoa(n)
		sc.Metadata[metaFirstSeq] = strconv.FormatUint(first, 10)
	}
	return sc
}

// dedupeWindow is the ledger streams' Duplicates: how long JetStream
// remembers a Nats-Msg-Id. The writer's idempotency needs it only while a
// publish of the same message can still arrive: one publish waits at most
// PublishTimeout (10 s by default), and nats.go resends only a message no
// server took (no responders). Beyond that nothing depends on it: every
// publish carries the expected last sequence, so a late copy of a stored
// message is refused as out of place (never stored twice), and after a
// failed or unanswered publish the writer reads back what the stream
// holds and accepts its own message found there (commit.go's recover). A
// longer window only costs start-up: nats-server rebuilds it by reading
// (and decompressing) every message of the window, which was 1.75 of 2.8 s
// of a restart right after load at 4.2 M events under nats-server's
// 2-minute default. Opening the ledger brings the current segment's
// window to this value (it takes effect from the next start).
const dedupeWindow = 10 * time.Second

// segmentOf builds a segment from its stream.
func segmentOf(n int, st jetstream.Stream) *segStream {
	info := st.CachedInfo()
	s := &segStream{n: n, name: info.Config.Name, stream: st, first: 1, sealed: info.Config.Sealed, created: info.Created}
	if len(info.Config.Subjects) > 0 {
		s.subject = info.Config.Subjects[0]
	}
	if info.Config.FirstSeq > 0 {
		s.first = info.Config.FirstSeq
	}
	if s.sealed {
		s.last = info.State.LastSeq
	}
	s.bytes.Store(info.State.Bytes)
	return s
}

// discoverSegments lists the ledger's segment streams in order. Segment 0
// may be missing (removed, or a new ledger).
func (l *Ledger) discoverSegments(ctx context.Context) ([]*segStream, error) {
	var out []*segStream
	st, err := jsretry.Do(ctx, func(ctx context.Context) (jetstream.Stream, error) { return l.js.Stream(ctx, l.cfg.Stream) })
	switch {
	case err == nil:
		if err := l.checkSegmentConfig(0, st.CachedInfo().Config); err != nil {
			return nil, err
		}
		out = append(out, segmentOf(0, st))
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, fmt.Errorf("ledger: stream %s: %w", l.cfg.Stream, err)
	}
	names := l.js.StreamNames(ctx, jetstream.WithStreamListSubject(l.cfg.Subject+".*"))
	var found []int
	for name := range names.Name() {
		rest, ok := strings.CutPrefix(name, l.cfg.Stream+"_")
		n, err := strconv.Atoi(rest)
		if ok && err == nil && n > 0 && strconv.Itoa(n) == rest {
			found = append(found, n)
		}
	}
	if err := names.Err(); err != nil {
		if len(out) == 1 && out[0].sealed {
			return nil, fmt.Errorf("ledger: stream %s is sealed and the segments after it cannot be listed: %w", l.cfg.Stream, err)
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("ledger: listing the ledger's segment streams: %w", err)
		}
		return out, nil // cannot list (e.g. an audit identity): segment 0 is all there is
	}
	slices.Sort(found)
	for _, n := range found {
		name, _ := l.segmentName(n)
		st, err := jsretry.Do(ctx, func(ctx context.Context) (jetstream.Stream, error) { return l.js.Stream(ctx, name) })
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue // removed since listed
		}
		if err != nil {
			return nil, fmt.Errorf("ledger: stream %s: %w", name, err)
		}
		if err := l.checkSegmentConfig(n, st.CachedInfo().Config); err != nil {
			return nil, err
		}
		out = append(out, segmentOf(n, st))
	}
	return out, nil
}

// checkSegmentConfig refuses a segment stream that could lose a message
// by itself, or that does not take its segment's subject: one a roll did
// not create (whoever holds keyledger's NATS identity may create and seal
// streams). Writing into it would acknowledge events it may then drop.
func (l *Ledger) checkSegmentConfig(n int, c jetstream.StreamConfig) error {
	_, subject := l.segmentName(n)
	var why string
	switch {
	case !c.DenyDelete || !c.DenyPurge:
		why = "it allows deletes or purges"
	case c.Retention != jetstream.LimitsPolicy, c.MaxMsgs > 0, c.MaxBytes > 0, c.MaxAge > 0, c.MaxMsgsPerSubject > 0, c.AllowMsgTTL:
		why = "its retention or limits can drop messages"
	case n > 0 && !slices.Equal(c.Subjects, []string{subject}) && !slices.Equal(c.Subjects, chainSubjects(subject)):
		why = fmt.Sprintf("its subjects are %v, not %v", c.Subjects, chainSubjects(subject))
	case c.Metadata[metaPartitions] != "" && c.Metadata[metaPartitions] != strconv.Itoa(chain.Partitions):
		why = fmt.Sprintf("it was written with %s control partitions, this build uses %d", c.Metadata[metaPartitions], chain.Partitions)
	default:
		return nil
	}
	return fmt.Errorf("ledger: segment stream %s is refused: %s (a roll never creates such a stream)", c.Name, why)
}

// refreshSegments re-reads the segment list.
func (l *Ledger) refreshSegments(ctx context.Context) error {
	_, err := l.lookSegments(ctx)
	return err
}

// lookSegments is refreshSegments returning the segments it found: what
// the streams held when it looked, whatever a concurrent look left.
func (l *Ledger) lookSegments(ctx context.Context) ([]*segStream, error) {
	segs, err := l.discoverSegments(ctx)
	if err != nil {
		return nil, err
	}
	if len(segs) == 0 {
		return nil, fmt.Errorf("ledger: no segment stream of %s is left", l.cfg.Stream)
	}
	l.segs.set(segs)
	return segs, nil
}

// SegmentInfo describes one segment for operators and tests.
type SegmentInfo struct {
	Number      int
	Stream      string
	First, Last uint64 // stream sequences; Last < First when empty
	Sealed      bool
	Created     time.Time
	Bytes       uint64 // as JetStream counts them (uncompressed)
}

// Segments lists the ledger's segments as they are now.
func (l *Ledger) Segments(ctx context.Context) ([]SegmentInfo, error) {
	if err := l.refreshSegments(ctx); err != nil {
		return nil, err
	}
	var out []SegmentInfo
	for _, s := range l.segs.list() {
		info, err := s.stream.Info(ctx)
		if err != nil {
			return nil, fmt.Errorf("ledger: stream %s: %w", s.name, err)
		}
		last := info.State.LastSeq
		if last < s.first {
			last = s.first - 1
		}
		out = append(out, SegmentInfo{Number: s.n, Stream: s.name, First: s.first, Last: last, Sealed: info.Config.Sealed, Created: info.Created,
			Bytes: info.State.Bytes})
	}
	return out, nil
}

// checkContiguous refuses segments with a gap between them.
func checkContiguous(stream string, segs []*segStream) error {
	for i := 1; i < len(segs); i++ {
		prev, s := segs[i-1], segs[i]
		if !prev.sealed || prev.last+1 != s.first {
			return &MissingSegmentError{Stream: stream, From: prev.last + 1, To: s.first - 1}
		}
	}
	return nil
}

// SegmentEnds reports whether stream sequence seq is the last of a sealed
// segment (where a removal may end).
func (l *Ledger) SegmentEnds(ctx context.Context, seq uint64) (bool, error) {
	if err := l.refreshSegments(ctx); err != nil {
		return false, err
	}
	for _, s := range l.segs.list() {
		if s.sealed && s.last == seq {
			return true, nil
		}
	}
	return false, nil
}

// segmentFor returns the segment holding stream sequence seq.
func (l *Ledger) segmentFor(seq uint64) (*segStream, error) {
	segs := l.segs.list()
	for i := len(segs) - 1; i >= 0; i-- {
		if seq >= segs[i].first {
			return segs[i], nil
		}
	}
	if len(segs) == 0 {
		return nil, fmt.Errorf("ledger: no segment stream of %s", l.cfg.Stream)
	}
	return nil, &MissingSegmentError{Stream: l.cfg.Stream, From: seq, To: segs[0].first - 1, Base: l.base.Seq}
}

// MissingSegmentError means stream sequences no segment holds were asked
// for: removed with an archived segment (at or before the base), or gone
// without a record of their removal.
type MissingSegmentError struct {
	Stream   string
	From, To uint64 // the missing stream sequences
	Base     uint64 // the last sequence removed with a recorded SegmentRemoved; 0 if none
}

func (e *MissingSegmentError) Error() string {
	if e.To <= e.Base && e.Base > 0 {
		return fmt.Sprintf("ledger %s: stream sequences %d–%d were removed with an archived segment (the live ledger starts after sequence %d): read them from the archive",
			e.Stream, e.From, e.To, e.Base)
	}
	return fmt.Sprintf("ledger %s: stream sequences %d–%d are in no segment stream and no SegmentRemoved event records their removal: a segment stream was deleted",
		e.Stream, e.From, e.To)
}

// ErrSealed is nats-server's answer to a publish on a sealed stream.
const jsErrStreamSealed jetstream.ErrorCode = 10109

func isSealed(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrStreamSealed
}

// rollDue reports whether the writer should start a new segment before
// its next batch: the current one is sealed (a crash mid-roll, or another
// instance rolled), or it is older than SegmentPeriod or holds
// SegmentMessages messages or SegmentBytes bytes (as of the follower's
// last look, at most FollowInterval ago when idle). An empty segment
// never rolls.
//
// Why a bound in bytes: after kill -9, nats-server finds the current
// stream's index older than its last block and rebuilds the stream's
// state from every block (filestore recoverFullState → errPriorState);
// sealed segments' indexes are current. A crash's restart therefore grows
// with the current segment's bytes (measured in the README's "Restart
// right after load"), and SegmentBytes bounds it whatever the traffic.
func (l *Ledger) rollDue(cur *segStream, through uint64) bool {
	if cur == nil || l.cfg.ReadOnly {
		return false
	}
	if cur.sealed {
		return true
	}
	if through < cur.first {
		return false
	}
	if l.cfg.SegmentMessages > 0 && through-cur.first+1 >= l.cfg.SegmentMessages {
		return true
	}
	if l.cfg.SegmentBytes > 0 && cur.bytes.Load() >= l.cfg.SegmentBytes {
		return true
	}
	return l.cfg.SegmentPeriod > 0 && time.Since(cur.created) >= l.cfg.SegmentPeriod
}

// roll seals segment seen (the one its caller found due, or sealed when it
// published), waits until the follower folded what it holds, and creates
// (or joins, if another instance made it) the next one. One roll at a time
// per instance (rollMu); the data writer and changes roll when they find
// the segment due or sealed. If a later segment exists already, seen was
// rolled meanwhile and roll does nothing: it must never seal the segment
// that follows seen, which another look at the streams may have made
// current since the caller looked (found by TestRollBySizeWhileFollowing:
// a fresh segment sealed with one message, or none).
func (l *Ledger) roll(ctx context.Context, seen *segStream) error {
	l.rollMu.Lock()
	defer l.rollMu.Unlock()
	segs, err := l.lookSegments(ctx)
	if err != nil {
		return err
	}
	cur := segs[len(segs)-1]
	if cur.n != seen.n {
		return nil // rolled meanwhile
	}
	info, err := cur.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("ledger: roll: stream %s: %w", cur.name, err)
	}
	if !info.Config.Sealed {
		cfg := info.Config
		cfg.Sealed = true
		if _, err := l.js.UpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("ledger: roll: sealing %s: %w", cur.name, err)
		}
		if info, err = cur.stream.Info(ctx); err != nil {
			return fmt.Errorf("ledger: roll: stream %s: %w", cur.name, err)
		}
	}
	last := info.State.LastSeq
	// Fold whatever other writers stored before the seal: the head is then
	// the segment's end, and the next segment starts right after it.
	if err := l.waitFolded(ctx, last); err != nil {
		return fmt.Errorf("ledger: roll: folding %s: %w", cur.name, err)
	}
	if err := l.refreshSegments(ctx); err != nil {
		return err
	}
	if c := l.segs.current(); c.n > cur.n {
		l.cfg.Logger.Info("ledger: following into the next segment", "stream", c.name, "first_sequence", c.first)
		return nil // another instance rolled, and we folded its messages
	}
	sc := l.segmentConfig(cur.n+1, last+1)
	st, err := l.js.CreateStream(ctx, sc)
	if err != nil {
		// Another instance may have created it meanwhile.
		if st, err = l.js.Stream(ctx, sc.Name); err != nil {
			return fmt.Errorf("ledger: roll: creating %s: %w", sc.Name, err)
		}
	}
	next := segmentOf(cur.n+1, st)
	if next.first != last+1 {
		return fmt.Errorf("ledger: roll: %s starts at stream sequence %d, but %s ends at %d", next.name, next.first, cur.name, last)
	}
	if err := l.refreshSegments(ctx); err != nil {
		return err
	}
	l.cfg.Logger.Info("ledger: new segment", "stream", next.name, "first_sequence", next.first, "sealed", cur.name)
	return nil
}

// infoAttempt bounds one ask for a segment's info within a look at the
// stream's end. A request sent while the stream elects a leader, or to a
// server just cut off, is never answered; one sent again once a leader is
// elected (or on the connection that replaced the lost one) is answered at
// once.
const infoAttempt = time.Second

// askInfo asks for s's info in attempts of infoAttempt until ctx ends.
func askInfo(ctx context.Context, s jetstream.Stream) (*jetstream.StreamInfo, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, infoAttempt)
		info, err := s.Info(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return info, err
		}
	}
}

// localSeq is the value of Nats-Expected-Last-Subject-Sequence in segment
// s for a chain whose last message is at stream sequence last: 0 when that
// message is in an earlier segment (the subject is new in s).
func localSeq(s *segStream, last uint64) uint64 {
	if last < s.first {
		return 0
	}
	return last
}

// liveRange is the first and last stream sequence the segments hold now
// (last < first when the ledger is empty).
func (l *Ledger) liveRange(ctx context.Context) (first, last uint64, err error) {
	return l.liveRangeBy(ctx, func(ctx context.Context, s *segStream) (*jetstream.StreamInfo, error) {
		return askInfo(ctx, s.stream)
	})
}

// liveRangeBy is liveRange with the segments' info got by ask.
func (l *Ledger) liveRangeBy(ctx context.Context, ask func(context.Context, *segStream) (*jetstream.StreamInfo, error)) (first, last uint64, err error) {
	cur := l.segs.current()
	info, err := ask(ctx, cur)
	if err != nil {
		return 0, 0, err
	}
	if info.Config.Sealed {
		if err := l.refreshSegments(ctx); err != nil {
			return 0, 0, err
		}
		cur = l.segs.current()
		if info, err = ask(ctx, cur); err != nil {
			return 0, 0, err
		}
	}
	// The count is the segment's whose info it is: a roll meanwhile must
	// not give the new (empty) segment the old one's bytes, or it would
	// roll again after its first message.
	cur.bytes.Store(info.State.Bytes)
	segs := l.segs.list()
	return segs[0].first, lastSeq(segs, info), nil
}

// lastSeq is the last stream sequence stored in any segment, given the
// current (last) segment's info: a segment just rolled to may be empty.
func lastSeq(segs []*segStream, cur *jetstream.StreamInfo) uint64 {
	last := segs[0].first - 1
	for _, s := range segs[:len(segs)-1] {
		last = max(last, s.last)
	}
	return max(last, cur.State.LastSeq)
}
