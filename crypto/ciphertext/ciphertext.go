// Package ciphertext defines keyledger's symmetric ciphertext blob and seals
// and opens it.
//
// Blob layout, format version 1 (all fields fixed size, then the sealed body):
//
//	version     1 byte   0x01, or 0x02 for a multi-Region key
//	key id     16 bytes  the KMS key's UUID, or the 32 hex digits of a
//	                     multi-Region key id (mrk-<32 hex>)
//	material   32 bytes  the key material id that sealed it
//	sealed      rest     aead.Seal(material, plaintext, aad = header || context)
//
// Related multi-Region keys share their key id and material, and the
// header binds the id, not a region: ciphertext made by any of them opens
// with any other, and with no unrelated key, whatever its material.
//
// The encryption context is bound as additional authenticated data in a
// canonical form (sorted keys, length-prefixed), so the same pairs in any
// order decrypt and any other pairs do not. Every failure to open is the same
// ErrInvalid. Safe for concurrent use.
package ciphertext

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"slices"
	"strings"

	"github.com/keyledger/keyledger/crypto/aead"
	"github.com/keyledger/keyledger/crypto/secret"
)

const (
	version1   = 0x01
	versionMRK = 0x02 // the same layout, naming a multi-Region key
	headerSize = 1 + 16 + 32
	sealLabel  = "keyledger/v1 symmetric ciphertext"
	// Overhead is how many bytes a blob adds to its plaintext.
	Overhead = headerSize + aead.Overhead
)

const mrkPrefix = "mrk-"

// ErrInvalid is the one error for any blob that does not parse or open.
var ErrInvalid = errors.New("ciphertext: invalid ciphertext")

// Header is the public part of a blob: which key and material made it.
type Header struct {
	KeyID      string // UUID text, or mrk-<32 hex> (lower case)
	MaterialID string // 64 lower-case hex characters
}

// Seal encrypts plaintext under material and returns the blob.
// It panics if the header is malformed (a programmer error).
func Seal(h Header, material secret.Bytes, plaintext []byte, context map[string]string) []byte {
	blob, err := h.appendTo(make([]byte, 0, headerSize+len(plaintext)+aead.Overhead))
	if err != nil {
		panic(err)
	}
	return aead.Seal(blob, material, sealLabel, plaintext, aad(blob[:headerSize], context))
}

// ParseHeader reads the header of a blob without decrypting it.
func ParseHeader(blob []byte) (Header, error) {
	if len(blob) < Overhead || (blob[0] != version1 && blob[0] != versionMRK) {
		return Header{}, ErrInvalid
	}
	id := formatUUID(blob[1:17])
	if blob[0] == versionMRK {
		id = mrkPrefix + hex.EncodeToString(blob[1:17])
	}
	return Header{KeyID: id, MaterialID: hex.EncodeToString(blob[17:headerSize])}, nil
}

// Open decrypts a blob sealed under material with the given context.
func Open(blob []byte, material secret.Bytes, context map[string]string) ([]byte, error) {
	if _, err := ParseHeader(blob); err != nil {
		return nil, err
	}
	pt, err := aead.Open(material, sealLabel, blob[headerSize:], aad(blob[:headerSize], context))
	if err != nil {
		return nil, ErrInvalid
	}
	return pt, nil
}

// appendTo appends the header's bytes to dst.
func (h Header) appendTo(dst []byte) ([]byte, error) {
	version := byte(version1)
	id, ok := parseUUID(h.KeyID)
	if mrk, isMRK := strings.CutPrefix(h.KeyID, mrkPrefix); isMRK {
		version = versionMRK
		ok = len(mrk) == 32 && mrk == strings.ToLower(mrk) && decodeHex(id[:], mrk)
	}
	var mat [32]byte
	if !ok || len(h.MaterialID) != 64 || !decodeHex(mat[:], h.MaterialID) {
		return nil, errors.New("ciphertext: malformed header")
	}
	dst = append(dst, version)
	dst = append(dst, id[:]...)
	return append(dst, mat[:]...), nil
}

// aad is header || count || (len key || key || len value || value)* with
// keys in byte order and lengths as unsigned varints.
func aad(header []byte, context map[string]string) []byte {
	var few [8]string // most contexts have fewer pairs: no allocation
	keys := few[:0]
	size := len(header) + binary.MaxVarintLen64
	for k, v := range context {
		keys = append(keys, k)
		size += len(k) + len(v) + 2*binary.MaxVarintLen64
	}
	slices.Sort(keys)
	out := make([]byte, 0, size)
	out = append(out, header...)
	out = binary.AppendUvarint(out, uint64(len(keys)))
	for _, k := range keys {
		out = binary.AppendUvarint(out, uint64(len(k)))
		out = append(out, k...)
		v := context[k]
		out = binary.AppendUvarint(out, uint64(len(v)))
		out = append(out, v...)
	}
	return out
}

func parseUUID(s string) (id [16]byte, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return id, false
	}
	ok = decodeHex(id[0:4], s[0:8]) && decodeHex(id[4:6], s[9:13]) && decodeHex(id[6:8], s[14:18]) &&
		decodeHex(id[8:10], s[19:23]) && decodeHex(id[10:16], s[24:36])
	return id, ok
}

// decodeHex decodes s, 2*len(dst) hex digits of either case, into dst
// (hex.DecodeString without allocating on the Encrypt path).
func decodeHex(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := fromHex(s[2*i])
		lo, ok2 := fromHex(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func fromHex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func formatUUID(b []byte) string {
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
