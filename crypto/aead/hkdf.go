package aead

import (
	"crypto/sha256"
	"hash"
	"sync"
)

// hkdfState is the scratch of one HKDF-SHA256 derivation, reused through
// hkdfStates: crypto/hkdf.Key builds two HMACs (four SHA-256 states and
// their buffers) per call, which was the largest single share of the
// objects one Encrypt allocated.
type hkdfState struct {
	h     hash.Hash
	pad   [sha256.BlockSize]byte
	inner [sha256.Size]byte
	prk   [sha256.Size]byte
	okm   [sha256.Size]byte
	info  []byte
}

var hkdfStates = sync.Pool{New: func() any { return &hkdfState{h: sha256.New(), info: make([]byte, 0, 64)} }}

// deriveKey sets out to HKDF-SHA256(ikm, salt, info) truncated to one
// SHA-256 block (RFC 5869): the bytes crypto/hkdf.Key(sha256.New, ikm,
// salt, info, 32) returns (TestDeriveKeyMatchesCryptoHKDF).
func deriveKey(out *[sha256.Size]byte, ikm, salt []byte, info string) {
	s := hkdfStates.Get().(*hkdfState)
	s.derive(out, ikm, salt, info)
	hkdfStates.Put(s)
}

// derive is deriveKey on s, which it leaves holding nothing derived from
// ikm.
func (s *hkdfState) derive(out *[sha256.Size]byte, ikm, salt []byte, info string) {
	s.hmac(&s.prk, salt, ikm, nil) // Extract
	s.info = append(append(s.info[:0], info...), 1)
	s.hmac(&s.okm, s.prk[:], s.info, nil) // Expand, T(1)
	*out = s.okm                          // (the state's arrays, not out, go through hash.Hash: out stays on the caller's stack)
	clear(s.okm[:])
	clear(s.prk[:])
	clear(s.inner[:])
	clear(s.pad[:])
	// Reset leaves the digest's buffer as it was: it holds the last
	// partial block hashed, the Expand HMAC's inner hash (and, for a
	// while, ikm itself). Overwrite it with zeros before the pool keeps it.
	s.h.Reset()
	s.h.Write(s.pad[:sha256.BlockSize-1])
	s.h.Reset()
}

// hmac sets out to HMAC-SHA256(key, a || b) (RFC 2104).
func (s *hkdfState) hmac(out *[sha256.Size]byte, key, a, b []byte) {
	clear(s.pad[:])
	if len(key) > sha256.BlockSize {
		k := sha256.Sum256(key)
		copy(s.pad[:], k[:])
		clear(k[:])
	} else {
		copy(s.pad[:], key)
	}
	for i := range s.pad {
		s.pad[i] ^= 0x36
	}
	s.h.Reset()
	s.h.Write(s.pad[:])
	s.h.Write(a)
	s.h.Write(b)
	s.h.Sum(s.inner[:0])
	for i := range s.pad {
		s.pad[i] ^= 0x36 ^ 0x5c
	}
	s.h.Reset()
	s.h.Write(s.pad[:])
	s.h.Write(s.inner[:])
	s.h.Sum(out[:0])
}
