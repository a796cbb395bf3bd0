package material

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/crypto/shred"
)

// ErrChanged means the material changed or was destroyed while it was
// being rewrapped; the rewrap did nothing.
var ErrChanged = errors.New("material: changed while rewrapping")

// Stored is one stored material: its root-wrapped bytes and the revision a
// Rewrap must find unchanged.
type Stored struct {
	Wrapped  []byte
	revision uint64
}

// GetStored returns id's root-wrapped bytes with their revision.
func (s *Store) GetStored(ctx context.Context, id string) (Stored, error) {
	e, err := s.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return Stored{}, ErrNotFound
	}
	if err != nil {
		return Stored{}, fmt.Errorf("material: get %s: %w", id, err)
	}
	stored := e.Value()
	if !shred.IsSealed(stored) {
		return Stored{Wrapped: stored, revision: e.Revision()}, nil
	}
	key, err := s.keys.Get(ctx, id)
	if err != nil {
		return Stored{}, err
	}
	defer key.Clear()
	wrapped, err := shred.Open(key, id, stored)
	if err != nil {
		return Stored{}, fmt.Errorf("material: get %s: %w", id, err)
	}
	return Stored{Wrapped: wrapped, revision: e.Revision()}, nil
}

// Rewrap replaces id's root-wrapped bytes (a root key rotation), sealed
// under the material's existing per-material key, if the entry is still
// the one GetStored returned: a material destroyed or changed meanwhile is
// left alone (ErrChanged). Destroying the per-material key still destroys
// the material, whichever root version wrapped it.
func (s *Store) Rewrap(ctx context.Context, id string, old Stored, wrapped []byte) error {
	key, err := s.keys.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return ErrChanged
	}
	if err != nil {
		return fmt.Errorf("material: rewrap %s: %w", id, err)
	}
	sealed := shred.Seal(key, id, wrapped)
	key.Clear()
	if _, err := s.kv.Update(ctx, id, sealed, old.revision); err != nil {
		var apiErr *jetstream.APIError
		if errors.Is(err, jetstream.ErrKeyExists) || (errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence) {
			return ErrChanged
		}
		return fmt.Errorf("material: rewrap %s: %w", id, err)
	}
	return nil
}

// IDs lists every stored material id.
func (s *Store) IDs(ctx context.Context) ([]string, error) {
	ids, err := s.kv.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("material: list: %w", err)
	}
	return ids, nil
}
