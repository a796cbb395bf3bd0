// Package sealstore keeps the deployment's sealed root key file (package
// crypto/seal's format) in a JetStream key-value bucket beside the ledger,
// so that instances sharing one seal take up a root key version another
// instance made or retired without a restart. What is stored is only ever
// the sealed file: every version wrapped under the seal's KEK (or, for an
// HSM, the labels of keys on the token), useless without the passphrase,
// the shares or the token. The bucket keeps one revision; a retired
// version leaves it when the file without it is stored (JetStream removes
// the previous message, as the seal file's rename replaces the old file;
// neither overwrites the old bytes on disk).
package sealstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/internal/jsretry"
	"github.com/keyledger/keyledger/ledger/internal/streamname"
)

// Errors callers branch on.
var (
	// ErrNone means no sealed file was stored yet.
	ErrNone = errors.New("sealstore: no sealed root key file stored")
	// ErrConflict means the file changed since the revision a Put was
	// conditional on (another instance rotated or retired a version).
	ErrConflict = errors.New("sealstore: the sealed file changed meanwhile")
)

const key = "root-seal"

// Store is the sealed root key file of one ledger stream's deployment.
type Store struct {
	kv jetstream.KeyValue
}

// Open creates or opens the bucket of a ledger stream.
func Open(ctx context.Context, nc *nats.Conn, ledgerStream string, replicas int) (*Store, error) {
	if replicas == 0 {
		replicas = 1
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	kv, err := jsretry.Do(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
		return js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      streamname.Or(ledgerStream) + "_SEAL",
			Description: "keyledger: the sealed root key file, for instances sharing the seal",
			History:     1,
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("sealstore: bucket: %w", err)
	}
	return &Store{kv: kv}, nil
}

// Put stores the sealed file if the stored one is still at revision rev
// (0: none stored yet), and returns the new revision; ErrConflict if not.
func (s *Store) Put(ctx context.Context, sealed []byte, rev uint64) (uint64, error) {
	var next uint64
	var err error
	if rev == 0 {
		next, err = s.kv.Create(ctx, key, sealed)
	} else {
		next, err = s.kv.Update(ctx, key, sealed, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, ErrConflict
	}
	if err != nil {
		return 0, fmt.Errorf("sealstore: %w", err)
	}
	return next, nil
}

// Get returns the sealed file last stored and its revision, or ErrNone.
func (s *Store) Get(ctx context.Context) ([]byte, uint64, error) {
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, 0, ErrNone
	}
	if err != nil {
		return nil, 0, fmt.Errorf("sealstore: %w", err)
	}
	return e.Value(), e.Revision(), nil
}
