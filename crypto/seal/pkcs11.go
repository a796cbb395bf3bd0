package seal

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"

	"github.com/keyledger/keyledger/crypto/rootkey"
)

// HSM is a token holding root key versions as non-extractable keys (a
// *hsm.Token).
type HSM interface {
	Generate(label string) (rootkey.Wrapper, error)
	Import(label string, k rootkey.Key) (rootkey.Wrapper, error)
	Key(label string) (rootkey.Wrapper, error)
	Destroy(label string) error
}

// NewPKCS11 makes root key version 1 on the token (or, with from set,
// imports that plaintext root key as a non-extractable key) and returns the
// seal file naming it.
func NewPKCS11(h HSM, module, token string, from *rootkey.Key) (*File, error) {
	id := make([]byte, 4)
	rand.Read(id)
	f := &File{Format: Format, Mode: ModePKCS11,
		PKCS11: &PKCS11{Module: module, Token: token, KeyPrefix: "keyledger-root-" + hex.EncodeToString(id) + "-v"}}
	label := f.label(1)
	var err error
	if from != nil {
		_, err = h.Import(label, *from)
	} else {
		_, err = h.Generate(label)
	}
	if err != nil {
		return nil, err
	}
	f.Versions = []Version{{Version: 1, Label: label}}
	f.Current = 1
	return f, nil
}

func (f *File) label(v uint32) string { return f.PKCS11.KeyPrefix + strconv.FormatUint(uint64(v), 10) }

// openHSM finds every version's key on the token.
func (f *File) openHSM(h HSM) (map[uint32]rootkey.Wrapper, error) {
	out := map[uint32]rootkey.Wrapper{}
	for _, v := range f.Versions {
		w, err := h.Key(v.Label)
		if err != nil {
			return nil, err
		}
		out[v.Version] = w
	}
	return out, nil
}
