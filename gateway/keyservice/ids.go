package keyservice

import (
	"crypto/rand"
	"encoding/hex"
)

// NewID returns a random (version 4) UUID: key ids, and the gateway's
// request ids.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("keyservice: crypto/rand failed: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// newMaterialID returns a random 256-bit id in hex, the form AWS uses for
// KeyMaterialId.
func newMaterialID() string { return hex.EncodeToString(randomBytes(32)) }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("keyservice: crypto/rand failed: " + err.Error())
	}
	return b
}
