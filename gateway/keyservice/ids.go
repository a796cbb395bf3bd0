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
	var u [36]byte // formatted in place: one allocation, for the string
	hex.Encode(u[0:8], b[0:4])
	hex.Encode(u[9:13], b[4:6])
	hex.Encode(u[14:18], b[6:8])
	hex.Encode(u[19:23], b[8:10])
	hex.Encode(u[24:36], b[10:16])
	u[8], u[13], u[18], u[23] = '-', '-', '-', '-'
	return string(u[:])
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
