// Package aead seals and opens messages with AES-256-GCM under a key derived
// afresh for every message, so no AES key ever comes near the random-nonce
// limit of GCM however many messages one long-lived key protects.
//
// Sealed layout: salt (16) || nonce (12) || GCM ciphertext and tag (len+16).
// The per-message key is HKDF-SHA256(ikm = key, salt = salt, info = label).
// Functions are safe for concurrent use; they never log or keep secrets.
package aead

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"

	"github.com/keyledger/keyledger/crypto/secret"
)

const (
	saltSize  = 16
	nonceSize = 12
	tagSize   = 16
	// Overhead is how many bytes Seal adds to a plaintext.
	Overhead = saltSize + nonceSize + tagSize
)

// ErrOpen is the single, opaque failure of Open.
var ErrOpen = errors.New("aead: message authentication failed")

// Seal encrypts plaintext under a key derived from key, salt and label,
// binding aad, and appends the sealed form to dst.
func Seal(dst []byte, key secret.Bytes, label string, plaintext, aad []byte) []byte {
	var sn [saltSize + nonceSize]byte
	if _, err := rand.Read(sn[:]); err != nil {
		panic("aead: crypto/rand failed: " + err.Error())
	}
	g := derive(key, sn[:saltSize], label)
	dst = append(dst, sn[:]...)
	return g.Seal(dst, sn[saltSize:], plaintext, aad)
}

// Open authenticates and decrypts a sealed message. Any failure returns
// ErrOpen and no plaintext.
func Open(key secret.Bytes, label string, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, ErrOpen
	}
	g := derive(key, sealed[:saltSize], label)
	pt, err := g.Open(nil, sealed[saltSize:saltSize+nonceSize], sealed[saltSize+nonceSize:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

func derive(key secret.Bytes, salt []byte, label string) cipher.AEAD {
	if key.Len() != 32 {
		panic("aead: key must be 32 bytes")
	}
	var k [32]byte
	deriveKey(&k, key.Expose(), salt, label)
	defer clear(k[:])
	block, err := aes.NewCipher(k[:])
	if err != nil {
		panic("aead: " + err.Error())
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		panic("aead: " + err.Error())
	}
	return g
}
