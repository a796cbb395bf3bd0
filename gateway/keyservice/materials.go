package keyservice

import (
	"context"
	"encoding/base64"
	"fmt"

	"github.com/keyledger/keyledger/crypto/asymmetric"
	"github.com/keyledger/keyledger/crypto/keyspec"
	"github.com/keyledger/keyledger/crypto/secret"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/material"
	"github.com/keyledger/keyledger/projections/keystate"
)

// unwrapped returns a key material in plaintext, from the cache or from the
// material store, after checking it against the ledger's commitment.
func (s *Service) unwrapped(ctx context.Context, m keystate.Material) (secret.Bytes, error) {
	s.cacheMu.RLock()
	sec, ok := s.cache[m.ID]
	s.cacheMu.RUnlock()
	if ok {
		s.cacheHits.Add(1)
		return sec, nil
	}
	s.cacheMisses.Add(1)
	var wrapped []byte
	var err error
	if c, ok := s.materials.(checkedGetter); ok { // both copies, the committed bytes preferred
		wrapped, err = c.GetChecked(ctx, m.ID, commitments(m.WrappedHash, m.PreviousHash)...)
	} else {
		wrapped, err = s.materials.Get(ctx, m.ID)
	}
	if err != nil {
		return secret.Bytes{}, fmt.Errorf("material %s: %w", m.ID, err)
	}
	if h := material.Commitment(wrapped); h != m.WrappedHash && (m.PreviousHash == "" || h != m.PreviousHash) {
		return secret.Bytes{}, fmt.Errorf("material %s does not match its ledger commitment", m.ID)
	}
	sec, err = s.root.UnwrapMaterial(wrapped, m.ID)
	if err != nil {
		return secret.Bytes{}, fmt.Errorf("material %s: %w", m.ID, err)
	}
	s.cacheMu.Lock()
	s.cache[m.ID] = sec
	s.cacheMu.Unlock()
	return sec, nil
}

// checkedGetter reads material accepting only the ledger's commitments
// (material.Store).
type checkedGetter interface {
	GetChecked(ctx context.Context, id string, commitments ...string) ([]byte, error)
}

// CacheStats returns how often unwrapped key material was found in the
// cache, and how often it had to be read from the material store and
// unwrapped, since start.
func (s *Service) CacheStats() (hits, misses uint64) { return s.cacheHits.Load(), s.cacheMisses.Load() }

// privateKey returns a key material parsed as the key's private key.
func (s *Service) privateKey(ctx context.Context, k keystate.Key, m keystate.Material) (*asymmetric.PrivateKey, error) {
	s.cacheMu.RLock()
	pk, ok := s.parsed[m.ID]
	s.cacheMu.RUnlock()
	if ok {
		return pk, nil
	}
	sec, err := s.unwrapped(ctx, m)
	if err != nil {
		return nil, err
	}
	if pk, err = asymmetric.Parse(k.Spec, sec); err != nil {
		return nil, fmt.Errorf("material %s: %w", m.ID, err)
	}
	s.cacheMu.Lock()
	s.parsed[m.ID] = pk
	s.cacheMu.Unlock()
	return pk, nil
}

// forget drops materials from the caches and clears their bytes.
func (s *Service) forget(ids ...string) {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	for _, id := range ids {
		if sec, ok := s.cache[id]; ok {
			sec.Clear()
			delete(s.cache, id)
		}
		delete(s.parsed, id)
	}
}

// remember caches material that was just made or imported.
func (s *Service) remember(id string, mat secret.Bytes) {
	s.cacheMu.Lock()
	s.cache[id] = mat
	s.cacheMu.Unlock()
}

// newMaterial generates key material for spec, and for an asymmetric spec
// its public key (base64 DER). RSA generation takes up to seconds: call it
// before taking the service lock.
func newMaterial(spec keyspec.Spec) (secret.Bytes, string, error) {
	switch {
	case spec == keyspec.SymmetricDefault:
		return secret.Random(32), "", nil
	case spec.IsHMAC():
		return secret.Random(spec.HMACKeySize()), "", nil
	}
	mat, err := asymmetric.Generate(spec)
	if err != nil {
		return secret.Bytes{}, "", err
	}
	pk, err := asymmetric.Parse(spec, mat)
	if err != nil {
		mat.Clear()
		return secret.Bytes{}, "", err
	}
	return mat, base64.StdEncoding.EncodeToString(pk.PublicKeyDER()), nil
}

// storeMaterial wraps material under the root key and puts it in the
// material store, returning the commitment the ledger records.
func (s *Service) storeMaterial(ctx context.Context, mat secret.Bytes) (event.MaterialRef, error) {
	return s.storeMaterialAs(ctx, newMaterialID(), mat)
}

func (s *Service) storeMaterialAs(ctx context.Context, id string, mat secret.Bytes) (event.MaterialRef, error) {
	wrapped, err := s.root.WrapMaterial(mat, id)
	if err != nil {
		return event.MaterialRef{}, err
	}
	if err := s.materials.Put(ctx, id, wrapped); err != nil {
		return event.MaterialRef{}, err
	}
	return event.MaterialRef{ID: id, WrappedHash: material.Commitment(wrapped)}, nil
}
