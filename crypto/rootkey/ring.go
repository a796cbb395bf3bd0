package rootkey

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"sync"

	"github.com/keyledger/keyledger/crypto/secret"
)

// Wrapper wraps key material under one root key version: a Key in memory,
// or a key that never leaves an HSM.
type Wrapper interface {
	WrapMaterial(material secret.Bytes, materialID string) ([]byte, error)
	UnwrapMaterial(wrapped []byte, materialID string) (secret.Bytes, error)
}

// WrapMaterial is Wrap as a Wrapper.
func (k Key) WrapMaterial(material secret.Bytes, materialID string) ([]byte, error) {
	return k.Wrap(material, materialID), nil
}

// UnwrapMaterial is Unwrap as a Wrapper.
func (k Key) UnwrapMaterial(wrapped []byte, materialID string) (secret.Bytes, error) {
	return k.Unwrap(wrapped, materialID)
}

// ErrSealed is Ring's answer while no root key is installed.
var ErrSealed = errors.New("rootkey: the root key is sealed")

// VersionPrefix begins material wrapped under root key version 2 or later,
// followed by the version (4 bytes, big endian). Version 1 carries no
// prefix (the format before versions; it begins with a random salt).
const VersionPrefix = "KLROOTV\x00"

// VersionOf reports which root key version wrapped b.
func VersionOf(wrapped []byte) uint32 {
	if len(wrapped) >= len(VersionPrefix)+4 && bytes.HasPrefix(wrapped, []byte(VersionPrefix)) {
		return binary.BigEndian.Uint32(wrapped[len(VersionPrefix):])
	}
	return 1
}

// Ring is the set of root key versions in use: new material is wrapped
// under the current one, old material unwraps under the version that
// wrapped it until rotation retires that version. A new Ring is sealed
// until Install. A Ring is safe for concurrent use.
type Ring struct {
	mu       sync.RWMutex
	versions map[uint32]Wrapper
	current  uint32
}

// NewRing returns a sealed ring.
func NewRing() *Ring { return &Ring{versions: map[uint32]Wrapper{}} }

// Single returns an open ring holding k as version 1 (the plaintext root
// key file).
func Single(k Key) *Ring {
	r := NewRing()
	r.Install(map[uint32]Wrapper{1: k}, 1)
	return r
}

// Install opens the ring with these versions, current among them.
func (r *Ring) Install(versions map[uint32]Wrapper, current uint32) {
	if versions[current] == nil {
		panic("rootkey: current version not installed")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.versions = map[uint32]Wrapper{}
	for v, w := range versions {
		r.versions[v] = w
	}
	r.current = current
}

// Sealed reports whether no root key is installed.
func (r *Ring) Sealed() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.current == 0
}

// Current is the version new material is wrapped under (0 while sealed).
func (r *Ring) Current() uint32 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.current
}

// Versions lists the installed versions, oldest first.
func (r *Ring) Versions() []uint32 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]uint32, 0, len(r.versions))
	for v := range r.versions {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

// Add installs a new version and makes it current.
func (r *Ring) Add(v uint32, w Wrapper) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.versions[v] = w
	r.current = v
}

// Retire removes a version that is not current: what it wrapped no longer
// unwraps.
func (r *Ring) Retire(v uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v != r.current {
		delete(r.versions, v)
	}
}

// WrapMaterial wraps material under the current version.
func (r *Ring) WrapMaterial(material secret.Bytes, materialID string) ([]byte, error) {
	r.mu.RLock()
	v, w := r.current, r.versions[r.current]
	r.mu.RUnlock()
	if w == nil {
		return nil, ErrSealed
	}
	inner, err := w.WrapMaterial(material, materialID)
	if err != nil || v == 1 {
		return inner, err
	}
	out := make([]byte, 0, len(VersionPrefix)+4+len(inner))
	out = append(out, VersionPrefix...)
	out = binary.BigEndian.AppendUint32(out, v)
	return append(out, inner...), nil
}

// UnwrapMaterial unwraps material under the version that wrapped it.
func (r *Ring) UnwrapMaterial(wrapped []byte, materialID string) (secret.Bytes, error) {
	v := VersionOf(wrapped)
	r.mu.RLock()
	w, sealed := r.versions[v], r.current == 0
	r.mu.RUnlock()
	if sealed {
		return secret.Bytes{}, ErrSealed
	}
	if w == nil {
		return secret.Bytes{}, ErrUnwrap
	}
	if v != 1 {
		wrapped = wrapped[len(VersionPrefix)+4:]
	}
	return w.UnwrapMaterial(wrapped, materialID)
}
