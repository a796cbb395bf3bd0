package ledger

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/writer"
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
	info, err := l.segs.current().stream.Info(ctx)
	if err != nil {
		return chain.Head{}, fmt.Errorf("ledger: stream info: %w", err)
	}
	if info.State.Msgs > 0 || info.State.LastSeq > 0 {
		return chain.Head{}, ErrNotEmpty
	}
	links := chain.NewLinks(nil)
	var head chain.Head
	var data []byte
	var first event.Hash
	var name string // the chain of the message being packed
	firstIndex, n := uint64(0), 0
	lastSeq := uint64(0)             // of the last message published
	chainLast := map[string]uint64{} // of the last message on each chain
	var signer *writer.Key           // nil until the first writer registers
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
			return head, err
		}
		link, _, err := event.DecodeLink(raw)
		if err != nil {
			return head, fmt.Errorf("ledger: import: event %d: %w", links.Count(), err)
		}
		registers := signer == nil && registersWriter(raw)
		if n > 0 && (link.Chain != name || registers || n >= l.cfg.MaxBatchEvents || len(data)+len(raw)+1 > l.cfg.MaxBatchBytes) {
			if err := flush(); err != nil {
				return head, err
			}
		}
		if registers {
			// The first writer registers itself, in a message it signs.
			w := l.cfg.Writer
			if ev, err := event.Decode(raw); err != nil || w == nil || ev.Body.(*event.WriterRegistered).WriterID != w.ID() {
				return head, fmt.Errorf("%w (event %d registers it)", ErrImportWriter, links.Count())
			}
			signer = w
		}
		h, err := links.Link(lastSeq+1, raw)
		if err != nil {
			return head, err
		}
		if n == 0 {
			first, firstIndex, name = h, link.Index, link.Chain
		}
		head = chain.Head{Seq: head.Seq, Index: link.Index, Hash: h, Count: links.Count(), Chain: link.Chain}
		data = append(append(data, raw...), '\n')
		n++
	}
	if err := flush(); err != nil {
		return head, err
	}
	return head, nil
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
