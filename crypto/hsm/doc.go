// Package hsm keeps root key versions inside a PKCS#11 token (an HSM, or
// SoftHSM2 in tests) as non-extractable AES-256 keys, and wraps and unwraps
// key material there: the root key never enters this process.
//
// Wrapped layout: iv (12, from crypto/rand) || AES-256-GCM ciphertext and
// tag (16), computed by the token with aad = "keyledger/v1 hsm root wrap"
// || 0x00 || material id. A root key version wraps each material once (at
// creation or rotation), far below GCM's random-nonce limit.
//
// A Token is safe for concurrent use: it serialises its one session. The
// material cache above it keeps the request path off the token. The
// package needs cgo (the PKCS#11 module is a C library); without cgo, Open
// says so.
package hsm

import "errors"

// ErrUnwrap is the single failure of unwrapping: wrong key, wrong material
// id, or damaged bytes.
var ErrUnwrap = errors.New("hsm: cannot unwrap key material")

// ErrNoKey means the token holds no key with that label.
var ErrNoKey = errors.New("hsm: no such key on the token")

const (
	ivSize   = 12
	tagBits  = 128
	aadLabel = "keyledger/v1 hsm root wrap\x00"
)
