package material

import (
	"context"
	"errors"
	"fmt"
	"slices"

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

// GetStored returns id's root-wrapped bytes with the revision of their
// first copy (repaired from the second first, if it was bad).
func (s *Store) GetStored(ctx context.Context, id string) (Stored, error) {
	wrapped, rev, err := s.read(ctx, id, nil, true)
	if err != nil {
		return Stored{}, err
	}
	if rev == 0 {
		return Stored{}, fmt.Errorf("material: get %s: its first copy could not be repaired", id)
	}
	return Stored{Wrapped: wrapped, revision: rev}, nil
}

// Rewrap replaces id's root-wrapped bytes (a root key rotation), sealed
// under the material's existing per-material key, in both copies, if the
// first copy is still the one GetStored returned: a material destroyed or
// changed meanwhile is left alone (ErrChanged). Destroying the per-material
// key still destroys the material, whichever root version wrapped it.
func (s *Store) Rewrap(ctx context.Context, id string, old Stored, wrapped []byte) error {
	key, err := s.keys[0].Get(ctx, id)
	if err != nil {
		key, err = s.keys[1].Get(ctx, id)
	}
	if errors.Is(err, ErrNotFound) {
		return ErrChanged
	}
	if err != nil {
		return fmt.Errorf("material: rewrap %s: %w", id, err)
	}
	sealed := shred.Seal(key, id, wrapped)
	key.Clear()
	if _, err := s.kv[0].Update(ctx, id, sealed, old.revision); err != nil {
		var apiErr *jetstream.APIError
		if errors.Is(err, jetstream.ErrKeyExists) || (errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence) {
			return ErrChanged
		}
		return fmt.Errorf("material: rewrap %s: %w", id, err)
	}
	// A crash before the second copy is rewritten leaves it under the old
	// root version, which the ledger still accepts (its previous
	// commitment); Check then prefers the first copy's and rewrites it.
	if _, err := s.kv[1].Put(ctx, id, sealed); err != nil {
		return fmt.Errorf("material: rewrap %s (second copy): %w", id, err)
	}
	return nil
}

// IDs lists every stored material id (in either copy).
func (s *Store) IDs(ctx context.Context) ([]string, error) {
	var all []string
	for i := range s.kv {
		ids, err := s.kv[i].Keys(ctx)
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("material: list: %w", err)
		}
		all = append(all, ids...)
	}
	slices.Sort(all)
	return slices.Compact(all), nil
}
