//go:build !cgo

package hsm

import (
	"errors"

	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/crypto/secret"
)

// ErrPIN is a PIN the token refused.
var ErrPIN = errors.New("hsm: the token refused the PIN")

// Token is unavailable without cgo.
type Token struct{}

// Open always fails: PKCS#11 modules are C libraries, and this build has no cgo.
func Open(module, tokenLabel string, pin secret.Bytes) (*Token, error) {
	return nil, errors.New("hsm: this keyledger was built without cgo, so it cannot load a PKCS#11 module")
}

func (*Token) Close() error                                        { return nil }
func (*Token) Generate(string) (rootkey.Wrapper, error)            { return nil, ErrNoKey }
func (*Token) Import(string, rootkey.Key) (rootkey.Wrapper, error) { return nil, ErrNoKey }
func (*Token) Key(string) (rootkey.Wrapper, error)                 { return nil, ErrNoKey }
func (*Token) Destroy(string) error                                { return ErrNoKey }
func (*Token) Attributes(string) (bool, bool, bool, error)         { return false, false, false, ErrNoKey }
