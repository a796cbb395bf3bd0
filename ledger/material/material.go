// Package material is the deletable store of wrapped key material: a
// JetStream key-value bucket kept apart from the ledger stream.
//
// The ledger holds only a commitment to each material (its id and the hash of
// its wrapped bytes). When a key is deleted its material is destroyed here:
// the message is erased with JetStream's secure delete (overwritten on disk)
// and a purge marker replaces it, so not even someone holding the root key
// and the whole ledger can recover the key afterwards.
//
// The store only ever holds material wrapped under the root key. A Store is
// safe for concurrent use.
package material

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/internal/jsretry"
)

// ErrNotFound means the material does not exist or was destroyed.
var ErrNotFound = errors.New("material: not found")

// Config names the bucket.
type Config struct {
	Bucket   string // default "keyledger-material"
	Replicas int    // default 1
}

// Store holds wrapped key material.
type Store struct {
	kv     jetstream.KeyValue
	stream jetstream.Stream
}

// Open creates or opens the bucket.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = "keyledger-material"
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	// The bucket's stream is made here rather than by CreateKeyValue, which
	// denies message deletes for good; destroying material needs them.
	stream, err := jsretry.Do(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:              "KV_" + cfg.Bucket,
			Description:       "keyledger: key material wrapped under the root key (deletable)",
			Subjects:          []string{"$KV." + cfg.Bucket + ".>"},
			MaxMsgsPerSubject: 1,
			Discard:           jetstream.DiscardNew,
			AllowRollup:       true,
			AllowDirect:       true,
			Storage:           jetstream.FileStorage,
			Replicas:          cfg.Replicas,
			Duplicates:        2 * time.Minute,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("material: bucket %s: %w", cfg.Bucket, err)
	}
	kv, err := jsretry.Do(ctx, func(ctx context.Context) (jetstream.KeyValue, error) { return js.KeyValue(ctx, cfg.Bucket) })
	if err != nil {
		return nil, fmt.Errorf("material: bucket %s: %w", cfg.Bucket, err)
	}
	return &Store{kv: kv, stream: stream}, nil
}

// Commitment is what the ledger records for a wrapped material: the hex
// SHA-256 of its wrapped bytes.
func Commitment(wrapped []byte) string {
	h := sha256.Sum256(wrapped)
	return hex.EncodeToString(h[:])
}

// Put stores new wrapped material under id; an existing id is an error.
func (s *Store) Put(ctx context.Context, id string, wrapped []byte) error {
	if _, err := s.kv.Create(ctx, id, wrapped); err != nil {
		return fmt.Errorf("material: put %s: %w", id, err)
	}
	return nil
}

// Get returns the wrapped material for id.
func (s *Store) Get(ctx context.Context, id string) ([]byte, error) {
	e, err := s.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("material: get %s: %w", id, err)
	}
	return e.Value(), nil
}

// Destroy erases the material for id. Destroying missing material is not an
// error, so the scheduler can retry after a crash.
func (s *Store) Destroy(ctx context.Context, id string) error {
	e, err := s.kv.Get(ctx, id)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		return nil
	case err != nil:
		return fmt.Errorf("material: destroy %s: %w", id, err)
	}
	if err := s.stream.SecureDeleteMsg(ctx, e.Revision()); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("material: erase %s: %w", id, err)
	}
	if err := s.kv.Purge(ctx, id); err != nil {
		return fmt.Errorf("material: purge %s: %w", id, err)
	}
	return nil
}
