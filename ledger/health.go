package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrNoQuorum is Reachable's answer when JetStream answered for the
// stream but not its leader in touch with a majority of its replicas.
var ErrNoQuorum = errors.New("ledger: no stream leader in touch with a quorum answers")

// quorumFresh is how lately a stream's leader must have heard from a
// replica to count it in touch. An idle leader sends a heartbeat every
// second at most a second after its last message, each answered, so a
// replica in touch is heard from at least every 2 s; nats-server's leader
// steps down after 10 s without a quorum.
const quorumFresh = 5 * time.Second

// Reachable is LastStreamSeq for readiness: it fails with ErrNoQuorum
// unless the stream's leader answers, having heard from a majority of the
// stream's replicas (itself included) lately. Every member of a group
// that knows it has no leader answers STREAM.INFO from what it holds (a
// replica cut off from its cluster's quorum, or rejoining after one), and
// a leader cut off answers until it steps down.
//
// While the ledger is Stalled, the majority must have been heard from
// since the stall began, and such an answer ends the stall: JetStream
// answers again, and an instance that is not ready gets no request whose
// commit would say so. It writes nothing.
func (l *Ledger) Reachable(ctx context.Context) (uint64, error) {
	since, stalled := l.stalledSince()
	fresh := quorumFresh
	if stalled {
		fresh = min(fresh, time.Since(since))
	}
	_, last, err := l.liveRangeBy(ctx, func(ctx context.Context, s *segStream) (*jetstream.StreamInfo, error) {
		return l.askLeader(ctx, s.name, fresh)
	})
	if err != nil {
		return 0, err
	}
	if stalled {
		l.answersAgain(since)
	}
	return last, nil
}

// infoAnswer is one server's answer to STREAM.INFO.
type infoAnswer struct {
	Error *jetstream.APIError `json:"error,omitempty"`
	jetstream.StreamInfo
}

// askLeader asks for stream's info, in attempts of infoAttempt until ctx
// ends, and returns the first answer of its leader that heard from a
// majority within fresh. A request is answered by every leaderless member
// as well as by the leader, in either order, so every answer is read. An
// attempt that brought answers, none the leader's, ends with ErrNoQuorum;
// one that brought none is sent again (a leader being elected, or a
// connection lost, answers nothing).
func (l *Ledger) askLeader(ctx context.Context, stream string, fresh time.Duration) (*jetstream.StreamInfo, error) {
	nc := l.js.Conn()
	prefix := l.js.Options().APIPrefix
	switch {
	case l.js.Options().Domain != "":
		prefix = "$JS." + l.js.Options().Domain + ".API."
	case prefix == "":
		prefix = jetstream.DefaultAPIPrefix
	case !strings.HasSuffix(prefix, "."):
		prefix += "."
	}
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	for {
		if err := nc.PublishRequest(prefix+"STREAM.INFO."+stream, inbox, nil); err != nil {
			return nil, err
		}
		actx, cancel := context.WithTimeout(ctx, infoAttempt)
		var answered bool
		for {
			msg, err := sub.NextMsgWithContext(actx)
			if errors.Is(err, nats.ErrNoResponders) {
				cancel()
				return nil, jetstream.ErrNoStreamResponse // no server answers for JetStream
			}
			if err != nil {
				break
			}
			var a infoAnswer
			if json.Unmarshal(msg.Data, &a) != nil {
				continue
			}
			if a.Error != nil {
				if a.Error.ErrorCode == jetstream.JSErrCodeStreamNotFound {
					cancel()
					return nil, jetstream.ErrStreamNotFound
				}
				answered = true // JetStream's cluster has no leader
				continue
			}
			if heardQuorum(a.Cluster, fresh) {
				cancel()
				return &a.StreamInfo, nil
			}
			answered = true
		}
		cancel()
		switch {
		case answered:
			return nil, ErrNoQuorum
		case ctx.Err() != nil:
			return nil, ctx.Err()
		}
	}
}

// heardQuorum reports whether ci, a stream's cluster as the server that
// answered for it sees it, names a leader that heard from a majority of
// the group, itself included, within fresh. Only the leader answers while
// the group has one; a server outside any cluster leads a group of one.
func heardQuorum(ci *jetstream.ClusterInfo, fresh time.Duration) bool {
	if ci == nil {
		return true
	}
	if ci.Leader == "" {
		return false
	}
	heard := 1
	for _, p := range ci.Replicas {
		if p != nil && !p.Offline && p.Active < fresh {
			heard++
		}
	}
	return 2*heard > 1+len(ci.Replicas)
}

// LastStreamSeq asks JetStream for the ledger stream's last sequence. An
// error means the ledger cannot be reached; a sequence beyond Head().Seq
// means this instance has not yet folded everything stored.
func (l *Ledger) LastStreamSeq(ctx context.Context) (uint64, error) {
	_, last, err := l.liveRange(ctx)
	return last, err
}

// Writing reports whether the writer goroutine is running (Start was
// called and it has not stopped).
func (l *Ledger) Writing() bool {
	select {
	case <-l.done:
		return false
	default:
		return true
	}
}

// Folded is the stream sequence through which this instance folded the
// ledger (accepted or quarantined) and applied it: its lag behind
// LastStreamSeq is how far its projections are behind the stream.
func (l *Ledger) Folded() uint64 {
	if l.started.Load() {
		return l.folded.Load()
	}
	return l.foldThrough()
}
