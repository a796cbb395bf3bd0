package ledger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/internal/jsretry"
)

// Checkpoints stores signed checkpoints of the ledger's Merkle tree in their
// own stream beside the ledger (deletes and purges denied), in order.
type Checkpoints struct {
	js      jetstream.JetStream
	stream  jetstream.Stream
	subject string
}

// ErrNoCheckpoint means none has been stored yet.
var ErrNoCheckpoint = errors.New("ledger: no checkpoint yet")

// OpenCheckpoints creates or opens the checkpoint stream for a ledger stream.
func OpenCheckpoints(ctx context.Context, nc *nats.Conn, ledgerStream string, replicas int) (*Checkpoints, error) {
	if ledgerStream == "" {
		ledgerStream = "KEYLEDGER"
	}
	if replicas == 0 {
		replicas = 1
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	subject := "keyledger.checkpoints." + ledgerStream
	stream, err := jsretry.Do(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        ledgerStream + "_CHECKPOINTS",
			Description: "keyledger: signed checkpoints (C2SP tlog-checkpoint) of the ledger's Merkle tree",
			Subjects:    []string{subject},
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
			DenyDelete:  true,
			DenyPurge:   true,
			AllowDirect: true,
			Duplicates:  time.Minute,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: checkpoint stream: %w", err)
	}
	return &Checkpoints{js: js, stream: stream, subject: subject}, nil
}

// Put stores a signed checkpoint.
func (c *Checkpoints) Put(ctx context.Context, signed []byte) error {
	_, err := c.js.Publish(ctx, c.subject, signed)
	return err
}

// Latest returns the newest signed checkpoint.
func (c *Checkpoints) Latest(ctx context.Context) ([]byte, error) {
	m, err := c.stream.GetLastMsgForSubject(ctx, c.subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, ErrNoCheckpoint
	}
	if err != nil {
		return nil, err
	}
	return m.Data, nil
}

// Count returns how many checkpoints are stored (one a second under load:
// read them all only where cost may grow with history).
func (c *Checkpoints) Count(ctx context.Context) (uint64, error) {
	info, err := c.stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// All returns every stored checkpoint, oldest first. Its memory grows with
// history (one is stored a second under load): prefer Reader.
func (c *Checkpoints) All(ctx context.Context) ([][]byte, error) {
	next, err := c.Reader(ctx)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for {
		s, err := next(ctx)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
}

// Reader returns a function that yields the checkpoints stored when it
// was called, one at a time, oldest first, then io.EOF.
func (c *Checkpoints) Reader(ctx context.Context) (func(context.Context) ([]byte, error), error) {
	info, err := c.stream.Info(ctx)
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
		m, err := c.stream.GetMsg(ctx, seq)
		if err != nil {
			return nil, err
		}
		seq++
		return m.Data, nil
	}, nil
}
