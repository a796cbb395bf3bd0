// Package shred seals root-wrapped key material a second time, under a
// random per-material key, so that destroying that small key destroys the
// material however many copies of the sealed bytes a storage engine leaves
// behind (crypto-shredding).
//
// Stored format version 2 (version 1 is the bare root-key wrap, which has no
// prefix and begins with a random salt):
//
//	"KLSHRED" 0x02 (8) || aead.Seal(key, label, rootWrapped, aad = material id)
//
// Opening needs both the per-material key (for this layer) and the root key
// (for the wrap inside): neither the root key with every stored byte, nor
// the per-material keys alone, recovers material. The 8-byte prefix makes a
// version-1 blob taken for version 2 a 2^-64 accident.
//
// The package holds no state; functions are safe for concurrent use and
// never log. It never sees plaintext key material, only root-wrapped bytes.
package shred

import (
	"bytes"
	"errors"

	"github.com/keyledger/keyledger/crypto/aead"
	"github.com/keyledger/keyledger/crypto/secret"
)

// KeySize is the length of a per-material key.
const KeySize = 32

// Prefix begins every sealed (version 2) blob.
const Prefix = "KLSHRED\x02"

// Overhead is how many bytes Seal adds.
const Overhead = len(Prefix) + aead.Overhead

const label = "keyledger/v2 per-material shred layer"

// ErrOpen is the single failure of Open: wrong key, wrong material id, a
// blob that is not sealed, or damaged bytes.
var ErrOpen = errors.New("shred: cannot open sealed material")

// NewKey returns a fresh random per-material key.
func NewKey() secret.Bytes { return secret.Random(KeySize) }

// Seal seals root-wrapped material under a per-material key, bound to its
// material id.
func Seal(key secret.Bytes, materialID string, wrapped []byte) []byte {
	return aead.Seal([]byte(Prefix), key, label, wrapped, []byte(materialID))
}

// IsSealed reports whether b is in the sealed (version 2) format; anything
// else is a version-1 root-key wrap.
func IsSealed(b []byte) bool { return bytes.HasPrefix(b, []byte(Prefix)) }

// Open reverses Seal and returns the root-wrapped material.
func Open(key secret.Bytes, materialID string, sealed []byte) ([]byte, error) {
	if !IsSealed(sealed) || key.Len() != KeySize {
		return nil, ErrOpen
	}
	wrapped, err := aead.Open(key, label, sealed[len(Prefix):], []byte(materialID))
	if err != nil {
		return nil, ErrOpen
	}
	return wrapped, nil
}
