package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/internal/directget"
	"github.com/keyledger/keyledger/ledger/internal/jsretry"
)

// Reading the stream back. Every reader of the history (Replay, follow,
// the read-back after a failed publish, EventsFrom/EventsSince, audit
// verify) goes through messagesAfter, which never waits without bound:
//
//   - a short range (what follow and recover read: another instance's last
//     few messages) is fetched with direct gets, one request per message
//     and no consumer left behind on the server;
//   - a long range (replay, audit) is streamed with batched direct gets
//     (read_batch.go): no consumer, so a read-only identity needs no
//     consumer API. If a batch delivers nothing for readStall while
//     messages remain, or skips a sequence, the missing sequence is asked
//     for directly, and a message the stream cannot produce is an
//     *UnreadableError naming it.
//
// The stream denies deletes and purges, so every sequence up to the last
// must be readable: a gap is loss, never housekeeping.

const (
	// directReadMax is the longest range read with direct gets.
	directReadMax = 256
	// readStall is how long a bulk read waits for the next message before
	// asking the stream for it directly.
	readStall = 2 * time.Second
)

// UnreadableError means the stream claims a message it cannot produce: a
// corrupt or truncated block on disk, or a message lost at recovery.
// Nothing after it can be trusted to be complete, so readers stop there.
type UnreadableError struct {
	Stream string
	Seq    uint64 // the stream sequence that cannot be read
	Last   uint64 // the stream's last sequence, as it reported
	// Lost describes what nats-server reported lost or deleted, if anything.
	Lost string
	// After is the last valid event before it, when the reader knows it.
	After *chain.Head
	Cause error
}

func (e *UnreadableError) Error() string {
	s := fmt.Sprintf("ledger: stream %s: message at stream sequence %d of %d cannot be read (missing, or corrupt on disk)",
		e.Stream, e.Seq, e.Last)
	if e.After != nil {
		if e.After.Empty() {
			s += "; no valid event before it"
		} else {
			s += fmt.Sprintf("; the last valid event before it is index %d (stream sequence %d), so the ledger is unreadable from event index %d on",
				e.After.Index, e.After.Seq, e.After.NextIndex())
		}
	}
	if e.Lost != "" {
		s += "; " + e.Lost
	}
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

func (e *UnreadableError) Unwrap() error { return e.Cause }

// storedMsg is a message as read back by a direct get, single or batched.
// Subject is the subject the server stored it on (the chain it is on),
// never one its publisher put in its headers.
type storedMsg interface {
	Data() []byte
	Headers() nats.Header
	Subject() string
}

// rawMsg is a directly fetched message (rawMsgIn: its Subject is the
// server's).
type rawMsg struct{ m *jetstream.RawStreamMsg }

func (r rawMsg) Data() []byte         { return r.m.Data }
func (r rawMsg) Headers() nats.Header { return r.m.Header }
func (r rawMsg) Subject() string      { return r.m.Subject }

// messagesAfter yields messages with sequence > after, up to the last
// segment's last sequence when called, across segments, and fails rather
// than waits on one it cannot read or skips sequences no segment holds.
func (l *Ledger) messagesAfter(ctx context.Context, after uint64, fn func(m storedMsg, seq uint64) error) error {
	cur := l.segs.current()
	info, err := jsretry.Do(ctx, func(ctx context.Context) (*jetstream.StreamInfo, error) { return cur.stream.Info(ctx) })
	if err != nil {
		return fmt.Errorf("ledger: stream info: %w", err)
	}
	if info.Config.Sealed {
		// Rolled since we looked: read the segments after it too.
		if err := l.refreshSegments(ctx); err != nil {
			return err
		}
		cur = l.segs.current()
		if info, err = cur.stream.Info(ctx); err != nil {
			return fmt.Errorf("ledger: stream info: %w", err)
		}
	}
	segs := l.segs.list()
	if lastSeq(segs, info) <= after {
		return nil
	}
	if after+1 < segs[0].first {
		return &MissingSegmentError{Stream: l.cfg.Stream, From: after + 1, To: segs[0].first - 1, Base: l.base.Seq}
	}
	if err := checkContiguous(l.cfg.Stream, segs); err != nil {
		return err
	}
	for _, s := range segs {
		sinfo := info
		if s != cur {
			if s.last <= after {
				continue
			}
			if sinfo, err = jsretry.Do(ctx, func(ctx context.Context) (*jetstream.StreamInfo, error) { return s.stream.Info(ctx) }); err != nil {
				return fmt.Errorf("ledger: stream info %s: %w", s.name, err)
			}
		}
		from, last := max(after+1, s.first), sinfo.State.LastSeq
		if s != cur {
			last = s.last // sealed: the info may not say more
		}
		if last < from {
			continue
		}
		if last-from < directReadMax || !sinfo.Config.AllowDirect {
			err = l.readDirect(ctx, s, from, last, sinfo, fn)
		} else {
			err = l.readBatched(ctx, s, from, last, sinfo, fn)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readDirect fetches from..last one message at a time.
func (l *Ledger) readDirect(ctx context.Context, s *segStream, from, last uint64, info *jetstream.StreamInfo, fn func(m storedMsg, seq uint64) error) error {
	for seq := from; seq <= last; seq++ {
		m, err := l.getMsgIn(ctx, s, seq, info)
		if err != nil {
			return err
		}
		if err := fn(m, seq); err != nil {
			return err
		}
	}
	return nil
}

// getMsgIn fetches the message at seq from segment s, or explains why it
// cannot be had. A direct get may be answered by a replica that has not
// caught up, so a message it does not find is asked of the stream leader
// before it is declared unreadable. info is the segment's, or nil (asked
// for then).
func (l *Ledger) getMsgIn(ctx context.Context, s *segStream, seq uint64, info *jetstream.StreamInfo) (storedMsg, error) {
	m, err := l.rawMsgIn(ctx, s, seq)
	if err == nil {
		return rawMsg{m}, nil
	}
	if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, err
	}
	if info == nil {
		if info, err = s.stream.Info(ctx); err != nil {
			return nil, &UnreadableError{Stream: s.name, Seq: seq, Cause: err}
		}
	}
	return nil, &UnreadableError{Stream: s.name, Seq: seq, Last: info.State.LastSeq, Lost: lostText(info), Cause: jetstream.ErrMsgNotFound}
}

// directGetPatience is how long a direct get may go unanswered before the
// stream's leader is asked instead. Any replica answers a direct get; one
// cut off from its cluster is still offered requests until the routes to
// it fail (its peers give up writing to it after their write deadline,
// 10 s by nats-server's default, or after missed pings, minutes), and what
// it is offered is lost: a partition must not stall every read for that
// long.
const directGetPatience = 500 * time.Millisecond

// directShun is how long, after a direct get went unanswered, messages
// are asked of the leader without trying a direct get first. nats-server
// picks a replica's queue subscription at random, local or across a
// route, so about one direct get in three goes to the cut-off replica of
// an R3 stream: the follower, which reads others' short runs a message at
// a time, would lose the patience on every third message until the routes
// fail, and its instance's requests wait for the follower.
const directShun = 5 * time.Second

// shunDirect has reads skip direct gets for directShun.
func (l *Ledger) shunDirect() { l.directShunned.Store(time.Now().Add(directShun).UnixNano()) }

// rawMsgIn fetches the message at seq from segment s, asking the leader
// when no replica answers in time (or one did not lately), and before
// answering jetstream.ErrMsgNotFound. The message's Subject is the one
// the server stored it on.
func (l *Ledger) rawMsgIn(ctx context.Context, s *segStream, seq uint64) (*jetstream.RawStreamMsg, error) {
	if time.Now().UnixNano() >= l.directShunned.Load() {
		dctx, cancel := context.WithTimeout(ctx, directGetPatience)
		m, err := jsretry.Do(dctx, func(ctx context.Context) (*jetstream.RawStreamMsg, error) { return l.directGet(ctx, s, seq) })
		unanswered := dctx.Err() != nil
		cancel()
		if err == nil {
			return m, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("ledger: reading stream sequence %d (%s): %w", seq, s.name, err)
		}
		if unanswered {
			l.shunDirect()
		}
	}
	m, err := jsretry.Do(ctx, func(ctx context.Context) (*jetstream.RawStreamMsg, error) { return l.leaderGetMsg(ctx, s, seq) })
	if err == nil || errors.Is(err, jetstream.ErrMsgNotFound) {
		return m, err
	}
	return nil, fmt.Errorf("ledger: reading stream sequence %d (%s): %w", seq, s.name, err)
}

// rawMsg fetches the message at global stream sequence seq from the
// segment holding it (jetstream.ErrMsgNotFound if none has it).
func (l *Ledger) rawMsg(ctx context.Context, seq uint64) (*jetstream.RawStreamMsg, error) {
	s, err := l.segmentFor(seq)
	if err != nil {
		return nil, err
	}
	m, err := l.rawMsgIn(ctx, s, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) && s == l.segs.current() {
		// Perhaps rolled since we looked.
		if rerr := l.refreshSegments(ctx); rerr == nil {
			if ns, _ := l.segmentFor(seq); ns != nil && ns != s {
				return l.rawMsgIn(ctx, ns, seq)
			}
		}
	}
	return m, err
}

// directGet reads the message at seq of segment s by a direct get, taking
// its subject, sequence and time from what the server says
// (jetstream.ErrMsgNotFound if the stream does not hold it).
func (l *Ledger) directGet(ctx context.Context, s *segStream, seq uint64) (*jetstream.RawStreamMsg, error) {
	m, err := directget.Get(ctx, l.js.Conn(), s.name, seq)
	if errors.Is(err, directget.ErrNotFound) {
		return nil, jetstream.ErrMsgNotFound
	}
	if err != nil {
		return nil, err
	}
	t, _ := time.Parse(time.RFC3339Nano, directget.ServerHeader(m.Header, nats.JSTimeStamp))
	return &jetstream.RawStreamMsg{Subject: directget.ServerHeader(m.Header, nats.JSSubject), Sequence: seq,
		Header: m.Header, Data: m.Data, Time: t}, nil
}

// leaderGetMsg asks the stream leader (not a replica) for the message at seq.
func (l *Ledger) leaderGetMsg(ctx context.Context, s *segStream, seq uint64) (*jetstream.RawStreamMsg, error) {
	req, _ := json.Marshal(map[string]uint64{"seq": seq})
	resp, err := l.js.Conn().RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+s.name, req)
	if err != nil {
		return nil, err
	}
	var r struct {
		Message *struct {
			Subject string    `json:"subject"`
			Seq     uint64    `json:"seq"`
			Header  []byte    `json:"hdrs"`
			Data    []byte    `json:"data"`
			Time    time.Time `json:"time"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return nil, err
	}
	if r.Error != nil {
		if r.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound {
			return nil, jetstream.ErrMsgNotFound
		}
		return nil, r.Error
	}
	if r.Message == nil {
		return nil, jetstream.ErrMsgNotFound
	}
	var hdr nats.Header
	if len(r.Message.Header) > 0 {
		if hdr, err = nats.DecodeHeadersMsg(r.Message.Header); err != nil {
			return nil, err
		}
	}
	return &jetstream.RawStreamMsg{Subject: r.Message.Subject, Sequence: r.Message.Seq, Header: hdr, Data: r.Message.Data, Time: r.Message.Time}, nil
}

// lostText says what nats-server reported lost or deleted in a stream
// that denies deletes, i.e. what it dropped when it found a block corrupt
// or truncated.
func lostText(info *jetstream.StreamInfo) string {
	s := info.State
	out := ""
	if s.Lost != nil && len(s.Lost.Msgs) > 0 {
		out = fmt.Sprintf("nats-server reports %d message(s) lost (%d bytes), from stream sequence %d",
			len(s.Lost.Msgs), s.Lost.Bytes, s.Lost.Msgs[0])
	}
	if s.NumDeleted > 0 {
		if out != "" {
			out += "; "
		}
		out += fmt.Sprintf("nats-server counts %d message(s) deleted in a stream that denies deletes (dropped when it repaired a corrupt or truncated block)", s.NumDeleted)
	}
	return out
}
