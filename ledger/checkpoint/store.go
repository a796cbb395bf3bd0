package checkpoint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/internal/jsretry"
	"github.com/keyledger/keyledger/ledger/internal/streamname"
	"github.com/keyledger/keyledger/ledger/merkle"
)

// Store keeps signed checkpoints of the ledger's Merkle tree in their own
// stream beside the ledger (deletes and purges denied), in order.
type Store struct {
	js      jetstream.JetStream
	stream  jetstream.Stream
	subject string
}

// ErrNone means no checkpoint has been stored yet (or, from OpenExisting,
// that there is no checkpoint stream).
var ErrNone = errors.New("checkpoint: none stored yet")

func streamName(ledgerStream string) string { return ledgerStream + "_CHECKPOINTS" }
func subject(ledgerStream string) string    { return "keyledger.checkpoints." + ledgerStream }

// Open creates or opens the checkpoint stream of a ledger stream.
func Open(ctx context.Context, nc *nats.Conn, ledgerStream string, replicas int) (*Store, error) {
	ledgerStream = streamname.Or(ledgerStream)
	if replicas == 0 {
		replicas = 1
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	stream, err := jsretry.Do(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        streamName(ledgerStream),
			Description: "keyledger: signed checkpoints (C2SP tlog-checkpoint) of the ledger's Merkle tree",
			Subjects:    []string{subject(ledgerStream)},
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
			DenyDelete:  true,
			DenyPurge:   true,
			AllowDirect: true,
			Duplicates:  time.Minute,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint: stream: %w", err)
	}
	return &Store{js: js, stream: stream, subject: subject(ledgerStream)}, nil
}

// OpenExisting opens the checkpoint stream of a ledger stream without
// creating or changing it (what a subscribe-only audit identity may do).
// ErrNone means there is no such stream.
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
	return &Store{js: js, stream: stream, subject: subject(ledgerStream)}, nil
}

// Put stores a signed checkpoint.
func (s *Store) Put(ctx context.Context, signed []byte) error {
	_, err := s.js.Publish(ctx, s.subject, signed)
	return err
}

// Latest returns the newest signed checkpoint.
func (s *Store) Latest(ctx context.Context) ([]byte, error) {
	m, err := s.stream.GetLastMsgForSubject(ctx, s.subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, ErrNone
	}
	if err != nil {
		return nil, err
	}
	return m.Data, nil
}

// Count returns how many checkpoints are stored (one a second under load:
// read them all only where cost may grow with history).
func (s *Store) Count(ctx context.Context) (uint64, error) {
	info, err := s.stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// All returns every stored checkpoint, oldest first. Its memory grows with
// history (one is stored a second under load): prefer Reader.
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
// was called, one at a time, oldest first, then io.EOF.
func (s *Store) Reader(ctx context.Context) (func(context.Context) ([]byte, error), error) {
	info, err := s.stream.Info(ctx)
	if err != nil {
		return nil, err
	}
	seq, last := info.State.FirstSeq, info.State.LastSeq
	if info.State.Msgs == 0 {
		seq, last = 1, 0
	}
	return func(ctx context.Context) ([]byte, error) {
		if seq > last {
			return nil, io.EOF
		}
		m, err := s.stream.GetMsg(ctx, seq)
		if err != nil {
			return nil, err
		}
		seq++
		return m.Data, nil
	}, nil
}

// newestSearch bounds how far back Newest looks for a checkpoint its key
// verifies (instances sharing a ledger may each sign with their own key).
const newestSearch = 64

// Newest returns the newest stored checkpoint that verifies with vkey (a
// note verifier key), and how many newer ones did not verify (another
// instance's key, or forged). With vkey "" the newest is taken unverified,
// which can only cause a false alarm, never hide a truncation. ErrNone
// means none is stored, or none of the newest few verifies.
func (s *Store) Newest(ctx context.Context, vkey string) (cp merkle.Checkpoint, skipped int, err error) {
	info, err := s.stream.Info(ctx)
	if err != nil {
		return cp, 0, err
	}
	if info.State.Msgs == 0 {
		return cp, 0, ErrNone
	}
	for seq := info.State.LastSeq; seq >= info.State.FirstSeq && seq > 0 && skipped < newestSearch; seq-- {
		m, err := s.stream.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return cp, skipped, err
		}
		if vkey == "" {
			cp, err = unverified(m.Data)
		} else {
			cp, err = merkle.Open(m.Data, vkey)
		}
		if err == nil {
			return cp, skipped, nil
		}
		skipped++
	}
	return cp, skipped, ErrNone
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
