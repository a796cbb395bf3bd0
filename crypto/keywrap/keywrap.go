// Package keywrap implements AES Key Wrap with Padding (RFC 5649), the
// second half of AWS KMS's RSA_AES_KEY_WRAP import wrapping algorithms.
// The standard library has no key wrap. Unwrap fails with one opaque error
// and returns no partial output. Functions are safe for concurrent use.
package keywrap

import (
	"crypto/aes"
	"crypto/subtle"
	"encoding/binary"
	"errors"
)

// ErrUnwrap is every unwrap failure.
var ErrUnwrap = errors.New("keywrap: unwrap failed")

var aivPrefix = [4]byte{0xA6, 0x59, 0x59, 0xA6}

// Wrap wraps plaintext (1 byte or more) under kek (16, 24 or 32 bytes).
func Wrap(kek, plaintext []byte) ([]byte, error) {
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	if len(plaintext) == 0 || uint64(len(plaintext)) > 1<<32-1 {
		return nil, errors.New("keywrap: plaintext length out of range")
	}
	var aiv [8]byte
	copy(aiv[:4], aivPrefix[:])
	binary.BigEndian.PutUint32(aiv[4:], uint32(len(plaintext)))
	padded := make([]byte, (len(plaintext)+7)/8*8)
	copy(padded, plaintext)
	if len(padded) == 8 {
		out := make([]byte, 16)
		block.Encrypt(out, append(aiv[:], padded...))
		return out, nil
	}
	n := len(padded) / 8
	out := make([]byte, 8+len(padded))
	copy(out[8:], padded)
	a := aiv
	var b [16]byte
	for j := 0; j < 6; j++ {
		for i := 1; i <= n; i++ {
			copy(b[:8], a[:])
			copy(b[8:], out[8*i:8*i+8])
			block.Encrypt(b[:], b[:])
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(a[:], binary.BigEndian.Uint64(b[:8])^t)
			copy(out[8*i:], b[8:])
		}
	}
	copy(out[:8], a[:])
	return out, nil
}

// Unwrap reverses Wrap and checks the integrity value and padding.
func Unwrap(kek, wrapped []byte) ([]byte, error) {
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	if len(wrapped) < 16 || len(wrapped)%8 != 0 {
		return nil, ErrUnwrap
	}
	var a [8]byte
	var padded []byte
	if len(wrapped) == 16 {
		var b [16]byte
		block.Decrypt(b[:], wrapped)
		copy(a[:], b[:8])
		padded = append([]byte(nil), b[8:]...)
	} else {
		n := len(wrapped)/8 - 1
		r := append([]byte(nil), wrapped[8:]...)
		copy(a[:], wrapped[:8])
		var b [16]byte
		for j := 5; j >= 0; j-- {
			for i := n; i >= 1; i-- {
				t := uint64(n*j + i)
				binary.BigEndian.PutUint64(b[:8], binary.BigEndian.Uint64(a[:])^t)
				copy(b[8:], r[8*(i-1):8*i])
				block.Decrypt(b[:], b[:])
				copy(a[:], b[:8])
				copy(r[8*(i-1):], b[8:])
			}
		}
		padded = r
	}
	mli := int(binary.BigEndian.Uint32(a[4:]))
	ok := subtle.ConstantTimeCompare(a[:4], aivPrefix[:])
	if mli <= len(padded)-8 || mli > len(padded) {
		ok = 0
	}
	if ok == 1 {
		var pad byte
		for _, c := range padded[mli:] {
			pad |= c
		}
		ok &= subtle.ConstantTimeByteEq(pad, 0)
	}
	if ok != 1 {
		clear(padded)
		return nil, ErrUnwrap
	}
	return padded[:mli], nil
}
