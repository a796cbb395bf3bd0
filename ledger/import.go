package ledger

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/internal/jsretry"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/segment"
	"github.com/keyledger/keyledger/ledger/writer"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrNotEmpty means Import was asked to write into a stream that already
// holds events.
var ErrNotEmpty = errors.New("ledger: the stream is not empty")

// ErrImportWriter means Import was not given the key of the ledger's first
// registered writer, so the imported messages could not be signed.
var ErrImportWriter = errors.New("ledger: import needs the key of the ledger's first writer")

// Import writes events (each one's exact stored bytes, in stream order
// from the ledger's first event) into an empty stream, as a restore from a
// backup does, and returns the new head. Each event must link to the one
// before on its chain, so an imported ledger verifies exactly as the
// original did and rebuilds the same Merkle tree; consecutive events of
// one chain are packed into group-commit-sized messages on that chain's
// subject, so stream sequences may differ from the original's (nothing
// outside the stream refers to them). Call it after Open and before Replay
// and Start.
//
// Messages are signed as the folding rule requires (see chain.Folder):
// those before the ledger's first WriterRegistered event go unsigned, as
// they were written; that event starts a message of its own, and it and
// every message after it are signed with the configured writer key, which
// must therefore be the ledger's first writer (the deployment's escrowed
// writer key). Otherwise Import fails with ErrImportWriter. Messages on
// the chains several writers write are marked imported
// (writer.HeaderImported): the restoring writer signs every writer's data
// chain, and the records of the restored ledger name it as their writer.
// A history that revokes that key cannot be imported with it
// (ErrImportWriter): every message after the revocation would be
// quarantined.
func (l *Ledger) Import(ctx context.Context, events [][]byte) (chain.Head, error) {
	i := 0
	return l.ImportFrom(ctx, func() ([]byte, error) {
		if i == len(events) {
			return nil, io.EOF
		}
		i++
		return events[i-1], nil
	})
}

// ImportFrom is Import reading the events one at a time: next returns each
// event's exact stored bytes in stream order, then io.EOF. The bytes need
// only stay valid until the next call, so a restore streams a ledger of any
// length from a file in memory bounded by one group-commit message.
func (l *Ledger) ImportFrom(ctx context.Context, next func() ([]byte, error)) (chain.Head, error) {
	head, _, err := l.importFrom(ctx, chain.Head{}, nil, nil, nil, next)
	return head, err
}

// ImportAfterBase is Import for a ledger whose oldest segments were
// removed (archived and pruned): events continue the base, from its
// FirstIndex. It writes into an empty deployment, as a restore of a
// backup taken after a prune does, and reproduces the base: the live
// ledger's first segment stream (segment 1) is created to start at the
// stream sequence after base.Seq, so the SegmentRemoved event that names
// the base (its Through) still does; the events are linked from the base
// and signed with cfg.Writer, which the base must register (else
// ErrImportWriter); then the base is stored, with the tiled tree's
// frontier at it (tree), signed by cfg.Writer and named by the imported
// SegmentRemoved event, as Prune stores it. The ledger is closed; Open
// it to read it.
func ImportAfterBase(ctx context.Context, nc *nats.Conn, cfg Config, base segment.Base, tree merkle.Frontier, next func() ([]byte, error)) (chain.Head, error) {
	cfg.setDefaults()
	w := cfg.Writer
	switch {
	case base.Empty():
		return chain.Head{}, errors.New("ledger: import after a base: the base is empty")
	case w == nil || base.Writers[w.ID()] != w.PublicText():
		return chain.Head{}, fmt.Errorf("%w (the base registers writers %v)", ErrImportWriter, slices.Sorted(maps.Keys(base.Writers)))
	}
	start, err := base.Head()
	if err != nil {
		return chain.Head{}, err
	}
	heads, err := base.Heads()
	if err != nil {
		return chain.Head{}, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return chain.Head{}, err
	}
	probe := &Ledger{cfg: cfg, js: js}
	if segs, err := probe.discoverSegments(ctx); err != nil || len(segs) > 0 || probe.hasBaseBucket(ctx) {
		if err != nil {
			return chain.Head{}, err
		}
		return chain.Head{}, ErrNotEmpty
	}
	first := probe.segmentConfig(1, base.Seq+1)
	if _, err := jsretry.Do(ctx, func(ctx context.Context) (jetstream.Stream, error) { return js.CreateStream(ctx, first) }); err != nil {
		return chain.Head{}, fmt.Errorf("ledger: stream %s: %w", first.Name, err)
	}
	l, err := Open(ctx, nc, cfg)
	if err != nil {
		return chain.Head{}, err
	}
	head, removed, err := l.importFrom(ctx, start, heads, w, &base, next)
	if err != nil {
		return head, err
	}
	if removed == nil {
		return head, fmt.Errorf("ledger: import after a base: no SegmentRemoved event names the base (event %d, stream sequence %d)", base.FirstIndex, base.Seq)
	}
	return head, l.StoreBase(ctx, base, tree, *removed)
}

// importFrom writes events after start (empty: the first event) into the
// current segment, which must hold nothing after start.Seq; heads is every
// chain's head at start (nil for the first event). signer, if set, signs
// every message (a ledger continued after a base); else the ledger's first
// WriterRegistered event starts signing, with cfg.Writer. With base set it
// returns the last imported SegmentRemoved event that names it, with the
// stream sequence it landed at.
func (l *Ledger) importFrom(ctx context.Context, start chain.Head, heads map[string]chain.ChainHead, signer *writer.Key, base *segment.Base, next func() ([]byte, error)) (chain.Head, *event.Record, error) {
	info, err := l.segs.current().stream.Info(ctx)
	if err != nil {
		return chain.Head{}, nil, fmt.Errorf("ledger: stream info: %w", err)
	}
	if info.State.Msgs > 0 || info.State.LastSeq > start.Seq {
		return chain.Head{}, nil, ErrNotEmpty
	}
	linkHeads := map[string]chain.Head{}
	chainLast := map[string]uint64{} // of the last message on each chain
	for name, c := range heads {
		linkHeads[name] = chain.Head{Seq: c.Seq, Index: c.Index, Hash: c.Hash, Count: c.Count, Chain: name}
		chainLast[name] = c.Last
	}
	links := chain.NewLinks(linkHeads)
	head := start
	var data []byte
	var first event.Hash
	var name string // the chain of the message being packed
	firstIndex, n := uint64(0), 0
	lastSeq := start.Seq // of the last message published
	var removed, pendingRemoved *event.Record
	// The writers the history registers and revokes, from the first
	// signed message on: the signer must stay registered.
	var keys map[string]ed25519.PublicKey
	var revoked map[string]chain.Revocation
	if base != nil {
		if keys, err = base.WriterKeys(); err != nil {
			return chain.Head{}, nil, err
		}
		revoked = base.Revoked
	}
	flush := func() error {
		if n == 0 {
			return nil
		}
		msgID := messageID(name, firstIndex, first)
		var ack *jetstream.PubAck
		var err error
		if name == chain.Legacy {
			ack, err = l.publishAs(ctx, signer, data, msgID, lastSeq)
		} else {
			cur := l.segs.current()
			msg := &nats.Msg{Subject: chainSubject(cur, name), Data: data, Header: nats.Header{}}
			if signer != nil {
				msg.Header.Set(writer.HeaderWriter, signer.ID())
				msg.Header.Set(writer.HeaderSignature, base64.StdEncoding.EncodeToString(signer.SignAt(name, chainLast[name], data)))
				msg.Header.Set(writer.HeaderImported, "1")
			}
			ack, err = l.js.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID), jetstream.WithExpectLastSequence(lastSeq))
		}
		if err != nil {
			return fmt.Errorf("ledger: import: %w", err)
		}
		// Every event of the message is now at ack.Sequence.
		if pendingRemoved != nil {
			pendingRemoved.Seq, pendingRemoved.SignedAfter = ack.Sequence, chainLast[name]
			removed, pendingRemoved = pendingRemoved, nil
		}
		lastSeq = ack.Sequence
		chainLast[name] = lastSeq
		head.Seq = lastSeq
		data, n = data[:0], 0
		return nil
	}
	for {
		raw, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return head, nil, err
		}
		link, _, err := event.DecodeLink(raw)
		if err != nil {
			return head, nil, fmt.Errorf("ledger: import: event %d: %w", links.Count(), err)
		}
		registers := signer == nil && registersWriter(raw)
		if n > 0 && (link.Chain != name || registers || n >= l.cfg.MaxBatchEvents || len(data)+len(raw)+1 > l.cfg.MaxBatchBytes) {
			if err := flush(); err != nil {
				return head, nil, err
			}
		}
		if registers {
			// The first writer registers itself, in a message it signs.
			w := l.cfg.Writer
			if ev, err := event.Decode(raw); err != nil || w == nil || ev.Body.(*event.WriterRegistered).WriterID != w.ID() {
				return head, nil, fmt.Errorf("%w (event %d registers it)", ErrImportWriter, links.Count())
			}
			signer = w
		}
		if signer != nil && mayBeWriterEvent(raw) {
			if ev, err := event.Decode(raw); err == nil {
				keys, revoked = chain.Register(keys, revoked, []event.Record{{Event: ev, Seq: lastSeq + 1, Writer: signer.ID()}})
				if _, gone := revoked[signer.ID()]; gone {
					return head, nil, fmt.Errorf("%w: event %d revokes the key it is restored with (%s); every message after it would be quarantined",
						ErrImportWriter, links.Count(), signer.ID())
				}
			}
		}
		h, err := links.Link(lastSeq+1, raw)
		if err != nil {
			return head, nil, err
		}
		if n == 0 {
			first, firstIndex, name = h, link.Index, link.Chain
		}
		head = chain.Head{Seq: head.Seq, Index: link.Index, Hash: h, Count: links.Count(), Chain: link.Chain}
		if base != nil {
			if ev, err := event.Decode(raw); err == nil {
				if sr, ok := ev.Body.(*event.SegmentRemoved); ok && sr.NextIndex == base.FirstIndex && sr.LastHash == base.Prev && sr.Through == base.Seq {
					pendingRemoved = &event.Record{Event: ev, Raw: bytes.Clone(raw), Hash: h, Pos: links.Count() - 1}
				}
			}
		}
		data = append(append(data, raw...), '\n')
		n++
	}
	if err := flush(); err != nil {
		return head, nil, err
	}
	return head, removed, nil
}

// mayBeWriterEvent is a cheap test before decoding: false only for an
// event that is neither a WriterRegistered nor a WriterRevoked. The fold
// decodes as encoding/json does (any letter case in names, escapes in
// strings, the last of repeated names), so whoever holds a registered
// key may spell a type name other than the canonical encoding does: its
// value holds "Writer" as it is, or an escape.
func mayBeWriterEvent(raw []byte) bool {
	return bytes.Contains(raw, []byte("Writer")) || bytes.Contains(raw, []byte(`\u`))
}

// registersWriter reports whether raw is a WriterRegistered event.
func registersWriter(raw []byte) bool {
	ev, err := event.Decode(raw)
	if err != nil {
		return false
	}
	_, ok := ev.Body.(*event.WriterRegistered)
	return ok
}
