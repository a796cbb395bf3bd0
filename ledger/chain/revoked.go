package chain

import (
	"fmt"
	"maps"
	"slices"
)

// CheckNamedRevoked reports an error unless the writers a signed
// checkpoint of the first size events names as revoked (named: ID →
// base64 public key) are exactly those revoked, with those keys, by
// events before size in revoked (a fold's Revoked, at or after size).
//
// A fold that starts from a base (removed segments) takes the base's
// writers on trust from an anchor that names every writer the ledger
// ever knew: a base that names a writer revoked before it as live, or
// drops a revocation, is caught here once the fold has run, whatever the
// signer of the base appended after the checkpoint (a revocation of its
// own key included: it lies at or after size).
func CheckNamedRevoked(named map[string]string, size uint64, revoked map[string]Revocation) error {
	for _, id := range slices.Sorted(maps.Keys(named)) {
		r, ok := revoked[id]
		if !ok || r.PublicKey != named[id] || r.Pos >= size {
			return fmt.Errorf("the signed checkpoint names writer %s as revoked within its %d events, which the ledger does not revoke there with that key", id, size)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(revoked)) {
		if r := revoked[id]; r.Pos < size {
			if _, ok := named[id]; !ok {
				return fmt.Errorf("the ledger revokes writer %s at event %d, which the signed checkpoint of %d events does not name as revoked", id, r.Pos, size)
			}
		}
	}
	return nil
}

// RevokedBefore splits writers (live now) and revoked into what a fold
// stood at after its first size events: the writers then (those revoked at
// or after size were still live) and those revoked before, both ID →
// base64 public key. It is what a checkpoint of size events names, whose
// tree may lag the fold that gives writers and revoked.
func RevokedBefore(writers map[string]string, revoked map[string]Revocation, size uint64) (live, gone map[string]string) {
	live, gone = maps.Clone(writers), map[string]string{}
	if live == nil {
		live = map[string]string{}
	}
	for id, r := range revoked {
		if r.Pos < size {
			gone[id] = r.PublicKey
		} else {
			live[id] = r.PublicKey
		}
	}
	return live, gone
}
