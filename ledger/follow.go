package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
)

// The follower. One goroutine per instance folds every message of the
// stream in stream order, whoever wrote it, and hands the records to
// OnCommit: every instance's state is the same fold of the same order.
//
// It folds up to a target: the stream sequence of this instance's own
// latest acknowledged message (its requests wait for it), of the latest
// message another instance announced (each instance publishes a notice,
// <Subject>.appended, core NATS, after every acknowledged append), or the
// stream's last sequence, asked every FollowInterval and whenever someone
// must catch up (a lost race, a roll). This instance's own messages are
// folded from the copy it published (chain.Folder.FoldOwn: no read, no
// decoding, no signature check); others' are read by direct get.
//
// A request is released when the follower has folded its message (its
// ownMsg settles): the instance that answered reads its own writes. Other
// instances fold it a notice and a direct get later.

// ownMsg is a message this instance published (or is publishing), until
// the follower folds it.
type ownMsg struct {
	chain    string
	msgID    string
	data     []byte
	evs      []*event.Event
	writer   string
	sig      string
	seq      uint64     // its stream sequence, once acknowledged
	items    []*pending // a data batch's requests, settled when folded
	claimed  bool       // the follower took it (under omu)
	done     chan struct{}
	recs     []event.Record // what the fold made of it (nil: quarantined)
	foldErr  error
	released bool
}

// own registers a message about to be published, so the follower
// recognizes it.
func (l *Ledger) own(o *ownMsg) *ownMsg {
	o.done = make(chan struct{})
	l.omu.Lock()
	l.ownID[o.msgID] = o
	l.omu.Unlock()
	return o
}

// acked records that o was stored at seq and has the follower fold
// through it — or, when o is the very next message and nothing else
// waits to be written, folds it at once on the caller's goroutine (see
// foldNext).
func (l *Ledger) acked(o *ownMsg, seq uint64) {
	l.omu.Lock()
	if !o.claimed { // claimed: the follower set seq, and may be reading it
		o.seq = seq
		l.ownSeq[seq] = o
	}
	l.omu.Unlock()
	if len(l.queue) == 0 {
		l.foldNext(seq)
	}
	l.follow(seq)
}

// foldNext folds this instance's own message at seq if it is the next
// message of the stream and no fold is running: one hand-off less for a
// lone request (its answer waits for the fold), at the cost of the fold's
// time on the writer, which is why acked does it only when nothing is
// queued behind. The follower's fold holds foldMu for its whole run, so
// the two never fold around each other.
func (l *Ledger) foldNext(seq uint64) {
	if !l.foldMu.TryLock() {
		return // the follower is folding: it will come to seq
	}
	defer l.foldMu.Unlock()
	if l.folded.Load()+1 != seq {
		return // others' messages come first: the follower reads them
	}
	if o := l.claimAt(seq); o != nil {
		l.foldOne(chain.Message{Seq: seq, Chain: o.chain, Data: o.data, Writer: o.writer, Signature: o.sig}, o)
	}
}

// disown forgets o, a message that was not stored (or whose fate is given
// up on), unless the follower took it already: then it reports true and
// o settles when folded.
func (l *Ledger) disown(o *ownMsg) bool {
	l.omu.Lock()
	defer l.omu.Unlock()
	if o.claimed {
		return true
	}
	delete(l.ownID, o.msgID)
	if o.seq != 0 {
		delete(l.ownSeq, o.seq)
	}
	return false
}

// claimAt takes the own message acknowledged at seq, if any.
func (l *Ledger) claimAt(seq uint64) *ownMsg {
	l.omu.Lock()
	defer l.omu.Unlock()
	o := l.ownSeq[seq]
	if o != nil {
		l.claimLocked(o)
	}
	return o
}

// claimStored takes the own message m is, if it is one whose
// acknowledgement has not come yet (or was lost): same chain, same
// Nats-Msg-Id, same bytes.
func (l *Ledger) claimStored(m chain.Message, msgID string) *ownMsg {
	if msgID == "" {
		return nil
	}
	l.omu.Lock()
	defer l.omu.Unlock()
	o := l.ownID[msgID]
	if o == nil || o.claimed || o.chain != m.Chain || o.writer != m.Writer || !bytes.Equal(o.data, m.Data) || o.seq != 0 && o.seq != m.Seq {
		return nil
	}
	o.seq = m.Seq // its acknowledgement, late or lost, would say the same
	l.claimLocked(o)
	return o
}

func (l *Ledger) claimLocked(o *ownMsg) {
	o.claimed = true
	delete(l.ownID, o.msgID)
	if o.seq != 0 {
		delete(l.ownSeq, o.seq)
	}
}

// settleOwn releases what waits for o, now folded into recs (nil: the
// fold quarantined it).
func (l *Ledger) settleOwn(o *ownMsg, recs []event.Record, err error) {
	o.recs, o.foldErr = recs, err
	if recs == nil && o.foldErr == nil {
		o.foldErr = errors.New("quarantined")
	}
	if o.items != nil {
		if recs == nil {
			settle(o.items, nil, fmt.Errorf("ledger: this instance's message at stream sequence %d was not accepted: %w", o.seq, o.foldErr))
		} else {
			settle(o.items, recs, nil)
		}
	}
	close(o.done)
}

// follow has the follower fold through stream sequence seq.
func (l *Ledger) follow(seq uint64) {
	for {
		t := l.target.Load()
		if seq <= t || l.target.CompareAndSwap(t, seq) {
			break
		}
	}
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// noticeSubject carries the notices of acknowledged appends (core NATS,
// not stored: <Subject>.appended is no stream's subject).
func (l *Ledger) noticeSubject() string { return l.cfg.Subject + ".appended" }

// listenForNotices follows the other instances' announced appends; without
// it this instance still finds them every FollowInterval.
func (l *Ledger) listenForNotices() {
	sub, err := l.js.Conn().Subscribe(l.noticeSubject(), func(m *nats.Msg) {
		if seq, err := strconv.ParseUint(string(m.Data), 10, 64); err == nil {
			l.follow(seq)
		}
	})
	if err != nil {
		l.cfg.Logger.Warn("ledger: not listening for other instances' appends; following them every "+l.cfg.FollowInterval.String(), "error", err)
		return
	}
	l.noticeSub = sub
}

// announce tells the other instances that the stream holds seq; losing
// the notice only delays them until their next look.
func (l *Ledger) announce(seq uint64) {
	_ = l.js.Conn().Publish(l.noticeSubject(), strconv.AppendUint(nil, seq, 10))
}

// follower folds the stream in order until stopFollower.
func (l *Ledger) follower() {
	defer close(l.followDone)
	if l.noticeSub != nil {
		defer func() { _ = l.noticeSub.Unsubscribe() }()
	}
	tick := time.NewTicker(l.cfg.FollowInterval)
	defer tick.Stop()
	failures := 0
	for {
		if target := l.target.Load(); target > l.folded.Load() {
			err := l.foldTo(target)
			if err == nil {
				failures = 0
				continue
			}
			if pastEnd(err) {
				// The target is beyond what the stream holds: an
				// announcement (core NATS, unauthenticated) of a sequence
				// not stored. Folded up to the end already; no back-off,
				// or a stream of such notices would stall every request.
				l.clampTarget()
				continue
			}
			failures++
			if failures == 1 || failures%20 == 0 {
				l.cfg.Logger.Warn("ledger: following the stream", "error", err, "folded", l.folded.Load(), "target", target)
			}
			l.clampTarget()
			select {
			case <-l.stopFollow:
				return
			case <-time.After(min(time.Duration(failures)*50*time.Millisecond, time.Second)):
			}
			continue
		}
		select {
		case <-l.kick:
		case <-tick.C:
			l.poll()
		case <-l.stopFollow:
			return
		}
	}
}

// pastEnd reports whether err is a read of a sequence past the stream's
// last, which is no damage: nothing is stored there yet.
func pastEnd(err error) bool {
	var ue *UnreadableError
	return errors.As(err, &ue) && ue.Last > 0 && ue.Seq > ue.Last
}

// stopFollower stops the follower once it folded every message this
// instance had acknowledged (at most PublishTimeout), then fails what
// still waits with ErrClosed.
func (l *Ledger) stopFollower() {
	deadline := time.Now().Add(l.cfg.PublishTimeout)
	for time.Now().Before(deadline) {
		l.omu.Lock()
		pending := len(l.ownSeq)
		l.omu.Unlock()
		if pending == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(l.stopFollow)
	<-l.followDone
	l.omu.Lock()
	var left []*ownMsg
	for _, o := range l.ownID {
		left = append(left, o)
	}
	for _, o := range l.ownSeq {
		if !o.claimed {
			left = append(left, o)
		}
	}
	for _, o := range left {
		// Settled here: a change whose acknowledgement comes after this
		// (its caller does not stop with the writer) must neither be
		// registered again nor folded by acked's foldNext, which would
		// settle it a second time.
		o.claimed = true
	}
	l.ownID, l.ownSeq = map[string]*ownMsg{}, map[uint64]*ownMsg{}
	l.omu.Unlock()
	seen := map[*ownMsg]bool{}
	for _, o := range left {
		if seen[o] {
			continue
		}
		seen[o] = true
		if o.items != nil {
			settle(o.items, nil, ErrClosed)
		}
		o.foldErr = ErrClosed
		close(o.done)
	}
	if l.noticeSub != nil {
		_ = l.noticeSub.Unsubscribe()
	}
	if l.contend.sub != nil {
		_ = l.contend.sub.Unsubscribe()
	}
}

// poll asks the stream for its last sequence (following a roll) and has
// the follower fold through it. The follower waits for the answer, and
// this instance's acknowledged appends wait for the follower, so a look
// that goes unanswered (sent to a server just cut off, or while the
// stream's leader is being elected) is given up after pollTimeout, or as
// soon as the connection is lost: the next tick looks again.
func (l *Ledger) poll() {
	ctx, cancel := context.WithTimeout(context.Background(), min(pollTimeout, l.cfg.PublishTimeout))
	defer cancel()
	ctx, cancelConn := l.onConnection(ctx)
	defer cancelConn()
	if last, err := l.streamLast(ctx); err == nil {
		l.follow(last)
	}
}

// pollTimeout bounds one look at the stream's end by the follower.
const pollTimeout = time.Second

// clampTarget brings a target beyond the stream's end (an announcement
// of a sequence the stream does not hold) back to the end.
func (l *Ledger) clampTarget() {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.PublishTimeout)
	defer cancel()
	last, err := l.streamLast(ctx)
	if err != nil {
		return
	}
	for {
		t := l.target.Load()
		if t <= last || l.target.CompareAndSwap(t, max(last, l.folded.Load())) {
			return
		}
	}
}

// streamLast is the last sequence the segments hold, following a roll.
func (l *Ledger) streamLast(ctx context.Context) (uint64, error) {
	_, last, err := l.liveRange(ctx)
	return last, err
}

// foldTo folds every message up to stream sequence target, own messages
// from their copies, runs of others' by direct get.
func (l *Ledger) foldTo(target uint64) error {
	l.foldMu.Lock()
	defer l.foldMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.PublishTimeout)
	defer cancel()
	ctx, cancelConn := l.onConnection(ctx)
	defer cancelConn()
	for seq := l.folded.Load() + 1; seq <= target; {
		if o := l.claimAt(seq); o != nil {
			l.foldOne(chain.Message{Seq: seq, Chain: o.chain, Data: o.data, Writer: o.writer, Signature: o.sig}, o)
			seq++
			continue
		}
		end := target
		l.omu.Lock()
		for s := range l.ownSeq {
			if s > seq && s <= end {
				end = s - 1
			}
		}
		l.omu.Unlock()
		err := l.readRange(ctx, seq, end, func(sm storedMsg, s uint64) error {
			m := l.message(sm, s)
			l.foldOne(m, l.claimStored(m, sm.Headers().Get(jetstream.MsgIDHeader)))
			return nil
		})
		if err != nil {
			return err
		}
		seq = end + 1
	}
	return nil
}

// foldOne folds message m (o: this instance's, as it published it), hands
// its records to OnCommit, and releases what waits for it.
func (l *Ledger) foldOne(m chain.Message, o *ownMsg) {
	l.fmu.Lock()
	if m.Seq <= l.fold.Through() {
		l.fmu.Unlock()
		return // folded already (a read raced a roll's)
	}
	var recs []event.Record
	var err error
	if o != nil && o.seq == m.Seq {
		recs, err = l.fold.FoldOwn(m, o.evs)
	} else {
		recs, err = l.fold.Fold(m)
	}
	l.folded1(l.fold, recs, err)
	if recs != nil {
		l.cfg.OnCommit(recs)
	}
	l.folded.Store(l.fold.Through())
	close(l.moved)
	l.moved = make(chan struct{})
	l.fmu.Unlock()
	if o != nil {
		l.settleOwn(o, recs, err)
	}
}

// waitFolded waits until the follower folded through stream sequence seq.
func (l *Ledger) waitFolded(ctx context.Context, seq uint64) error {
	l.follow(seq)
	for {
		l.fmu.Lock()
		through, moved := l.folded.Load(), l.moved
		l.fmu.Unlock()
		if through >= seq {
			return nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return fmt.Errorf("ledger: folding through stream sequence %d (at %d): %w", seq, through, ctx.Err())
		case <-l.followDone:
			return ErrClosed
		}
	}
}

// catchUp has the follower fold everything the stream holds now: what
// took the place of an append that lost.
func (l *Ledger) catchUp(ctx context.Context) error {
	last, err := l.streamLast(ctx)
	if err != nil {
		return err
	}
	return l.waitFolded(ctx, last)
}

// followDirectMax is the longest run the follower reads a message at a
// time.
const followDirectMax = 16

// readRange reads the messages from..to, which the stream holds, across
// segments: short runs by direct gets, long ones batched.
func (l *Ledger) readRange(ctx context.Context, from, to uint64, fn func(m storedMsg, seq uint64) error) error {
	for from <= to {
		s, err := l.segmentFor(from)
		if err == nil && s == l.segs.current() && s.sealed {
			err = l.refreshSegments(ctx)
			if err == nil {
				s, err = l.segmentFor(from)
			}
		}
		if err != nil {
			return err
		}
		end := to
		if s.sealed && s.last < end {
			end = s.last
		}
		if s.sealed && s.last < from {
			// Past the sealed segment's end: the next is not known yet.
			if err := l.refreshSegments(ctx); err != nil {
				return err
			}
			if ns, _ := l.segmentFor(from); ns == s {
				return &UnreadableError{Stream: s.name, Seq: from, Last: s.last, Cause: errors.New("no segment holds it yet")}
			}
			continue
		}
		// A few messages by direct gets; a longer run by a batched one (a
		// busy peer appends faster than one request a message keeps up
		// with).
		if end-from < followDirectMax {
			err = l.readDirect(ctx, s, from, end, nil, fn)
		} else {
			err = l.readBatched(ctx, s, from, end, nil, fn)
		}
		if err != nil {
			return err
		}
		from = end + 1
	}
	return nil
}

// Sync waits until this instance folded every message the stream held
// when it was called: what a read must wait for to see every change
// acknowledged before it (by any instance).
func (l *Ledger) Sync(ctx context.Context) error { return l.catchUp(ctx) }

// The connection. A NATS server cut off by a partition falls silent; the
// client notices at its next unanswered pings and moves to another server
// of the cluster, but requests sent on the old connection (a publish, a
// direct get) wait for replies that never come, until their timeout. So
// the ledger ends them when the connection is lost: a publish then settles
// as failed (after its read-back on the new connection), the follower
// reads again, and requests fail fast instead of hanging behind them.

// watchConnection has the ledger hear when its connection is lost.
func (l *Ledger) watchConnection() {
	l.connEpoch.Store(newConnEpoch())
	l.js.Conn().SetDisconnectErrHandler(func(*nats.Conn, error) {
		if old := l.connEpoch.Swap(newConnEpoch()); old != nil {
			old.lose()
		}
	})
}

// connEpoch is the life of one connection: lost ends when it is lost.
type connEpoch struct {
	lost context.Context
	lose context.CancelFunc
}

func newConnEpoch() *connEpoch {
	e := &connEpoch{}
	e.lost, e.lose = context.WithCancel(context.Background())
	return e
}

// onConnection is ctx, also ended when the connection in use now is lost.
// It registers with the connection's epoch rather than start a goroutine
// to watch it: every commit and every look at the stream asks for one, and
// on one connection that goroutine was a fifth of a publish's CPU, besides
// waking another thread for it.
func (l *Ledger) onConnection(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	e := l.connEpoch.Load()
	if e == nil {
		return ctx, cancel
	}
	stop := context.AfterFunc(e.lost, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}
