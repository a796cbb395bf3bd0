// Package replication carries multi-Region key messages between regions
// on JetStream's own machinery: no transport of keyledger's making.
//
// Each region has an outbox stream, where it publishes what it tells other
// regions (subjects keyledger.mrk.<from>.<to>.<kind>.<key>), and an inbox
// stream that SOURCES every peer region's outbox, filtered to the messages
// addressed to it. In one process, or one NATS deployment, the source is a
// plain stream source; across deployments it names the peer's JetStream
// domain (Peer.APIPrefix, $JS.<domain>.API), so the two clusters may be
// joined by a leaf node or a gateway and each keeps its own JetStream. A
// region that is down or cut off loses nothing: the source resumes where
// it stopped when the link returns, in order.
//
// The outbox keeps one message per subject (MaxMsgsPerSubject 1): every
// message is a whole state (what a key's shared properties are, what a
// region holds), so a newer one supersedes an older one that was never
// delivered. Messages that carry key material (sealed to the recipient's
// replication key; see crypto/regionkey) are erased from both streams once
// used: the inbox erases a message after it was applied, and the sender
// erases what a peer confirmed (Erase). Erasure is JetStream's secure
// delete (the record overwritten on disk), not a purge. What stays: a
// message whose erasure a crash interrupted (until its subject is erased
// again), and one sent to a region that never confirmed it; both are
// sealed to that region's replication key, so they are worth nothing
// without its key file, and an operator retiring a region deletes both.
//
// This package moves bytes; it neither signs nor reads them. The
// messages' authenticity (the sender's writer signature) and meaning are
// the key service's. Safe for concurrent use.
package replication

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/internal/jsretry"
)

// Config describes one region's end of the links.
type Config struct {
	Region string // this region
	// Outbox and Inbox name this region's streams.
	Outbox, Inbox string
	// Peers are the regions whose messages this region receives.
	Peers    []Peer
	Replicas int // stream replicas (3 on a cluster), default 1
}

// Peer is another region this one exchanges messages with.
type Peer struct {
	Region string
	Outbox string // the peer's outbox stream
	// APIPrefix reaches the peer's JetStream when it is another domain
	// ("$JS.<domain>.API"); empty when both regions share one JetStream.
	APIPrefix string
	// DeliverPrefix is where the peer's JetStream delivers sourced
	// messages across domains (default: JetStream's own $JS.S.…
	// subjects, which a leaf node link that denies keyledger.> still
	// carries).
	DeliverPrefix string
}

// Message is one message received from a peer region.
type Message struct {
	From, To, Kind, Key string
	Data                []byte
	Stored              time.Time // when this region's inbox stored it
}

// Link is a region's outbox and inbox.
type Link struct {
	cfg    Config
	js     jetstream.JetStream
	outbox jetstream.Stream
	inbox  jetstream.Stream
	cons   jetstream.Consumer
}

const (
	subjectPrefix = "keyledger.mrk."
	durable       = "keyledger"
	retryDelay    = 2 * time.Second
)

// Subject is where a message from one region to another is published.
func Subject(from, to, kind, key string) string {
	return subjectPrefix + from + "." + to + "." + kind + "." + key
}

// Open creates or updates the region's outbox and inbox (with a source per
// peer) and the inbox's durable consumer.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Link, error) {
	if cfg.Region == "" || cfg.Outbox == "" || cfg.Inbox == "" {
		return nil, errors.New("replication: region, outbox and inbox are required")
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	l := &Link{cfg: cfg, js: js}
	l.outbox, err = jsretry.Do(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:              cfg.Outbox,
			Description:       "keyledger: multi-Region key messages from " + cfg.Region + " to other regions",
			Subjects:          []string{subjectPrefix + cfg.Region + ".>"},
			MaxMsgsPerSubject: 1,
			Discard:           jetstream.DiscardOld,
			Storage:           jetstream.FileStorage,
			Replicas:          cfg.Replicas,
			AllowDirect:       true,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("replication: outbox %s: %w", cfg.Outbox, err)
	}
	var sources []*jetstream.StreamSource
	for _, p := range cfg.Peers {
		src := &jetstream.StreamSource{Name: p.Outbox, FilterSubject: subjectPrefix + p.Region + "." + cfg.Region + ".>"}
		if p.APIPrefix != "" {
			src.External = &jetstream.ExternalStream{APIPrefix: p.APIPrefix, DeliverPrefix: p.DeliverPrefix}
		}
		sources = append(sources, src)
	}
	l.inbox, err = jsretry.Do(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        cfg.Inbox,
			Description: "keyledger: multi-Region key messages to " + cfg.Region + ", sourced from the other regions' outboxes",
			Sources:     sources,
			Storage:     jetstream.FileStorage,
			Replicas:    cfg.Replicas,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("replication: inbox %s: %w", cfg.Inbox, err)
	}
	l.cons, err = jsretry.Do(ctx, func(ctx context.Context) (jetstream.Consumer, error) {
		return l.inbox.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable: durable, AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxAckPending: 256,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("replication: inbox consumer: %w", err)
	}
	return l, nil
}

// Region is this end's region.
func (l *Link) Region() string { return l.cfg.Region }

// Publish sends data to region to, superseding (and erasing) the previous
// message of the same kind about the same key.
func (l *Link) Publish(ctx context.Context, to, kind, key string, data []byte) error {
	if err := l.Erase(ctx, to, kind, key); err != nil {
		return err
	}
	_, err := l.js.Publish(ctx, Subject(l.cfg.Region, to, kind, key), data)
	return err
}

// Erase securely deletes the outbox's message of a kind about a key to a
// region, if there is one.
func (l *Link) Erase(ctx context.Context, to, kind, key string) error {
	m, err := l.outbox.GetLastMsgForSubject(ctx, Subject(l.cfg.Region, to, kind, key))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := l.outbox.SecureDeleteMsg(ctx, m.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return err
	}
	return nil
}

// Receive hands every inbox message, in order, to fn until ctx ends. A
// message fn accepts (nil error) is acknowledged and erased from the
// inbox; one it refuses is delivered again after a pause. Messages whose
// subject does not parse are dropped.
func (l *Link) Receive(ctx context.Context, fn func(context.Context, Message) error) error {
	for ctx.Err() == nil {
		batch, err := l.cons.Fetch(16, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			select {
			case <-ctx.Done():
			case <-time.After(retryDelay):
			}
			continue
		}
		for m := range batch.Messages() {
			l.handle(ctx, m, fn)
		}
	}
	return nil
}

func (l *Link) handle(ctx context.Context, m jetstream.Msg, fn func(context.Context, Message) error) {
	meta, err := m.Metadata()
	if err != nil {
		_ = m.Term()
		return
	}
	msg, ok := parse(m.Subject())
	if !ok || msg.To != l.cfg.Region {
		_ = m.Term()
		_ = l.inbox.DeleteMsg(ctx, meta.Sequence.Stream)
		return
	}
	msg.Data, msg.Stored = m.Data(), meta.Timestamp
	if err := fn(ctx, msg); err != nil {
		_ = m.NakWithDelay(retryDelay)
		return
	}
	// Applied: acknowledge and erase it even if Receive is being stopped.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := m.DoubleAck(actx); err != nil {
		return // delivered again; fn must (and does) take a message twice
	}
	_ = l.inbox.SecureDeleteMsg(actx, meta.Sequence.Stream)
}

func parse(subject string) (Message, bool) {
	rest, ok := strings.CutPrefix(subject, subjectPrefix)
	if !ok {
		return Message{}, false
	}
	p := strings.Split(rest, ".")
	if len(p) != 4 {
		return Message{}, false
	}
	return Message{From: p[0], To: p[1], Kind: p[2], Key: p[3]}, true
}

// SourceState is how one peer's messages reach this region.
type SourceState struct {
	Region string
	// Lag is how many of the peer's messages to this region its source has
	// not yet copied (as JetStream reports it), Active how long ago it
	// last heard from the peer (-1: never).
	Lag    uint64
	Active time.Duration
}

// Sources reports the inbox's sources and what waits in the inbox.
func (l *Link) Sources(ctx context.Context) ([]SourceState, uint64, error) {
	info, err := l.inbox.Info(ctx)
	if err != nil {
		return nil, 0, err
	}
	var out []SourceState
	for _, s := range info.Sources {
		st := SourceState{Region: s.Name, Lag: s.Lag, Active: s.Active}
		for _, p := range l.cfg.Peers {
			if p.Outbox == s.Name {
				st.Region = p.Region
			}
		}
		out = append(out, st)
	}
	ci, err := l.cons.Info(ctx)
	if err != nil {
		return out, 0, err
	}
	return out, ci.NumPending + uint64(ci.NumAckPending), nil
}
