// Package mac computes HMACs for AWS KMS HMAC keys (HMAC_224/256/384/512);
// callers compare tags in constant time (hmac.Equal). Safe for concurrent
// use; never keeps the key.
package mac

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"hash"

	"github.com/keyledger/keyledger/crypto/keyspec"
	"github.com/keyledger/keyledger/crypto/secret"
)

// ErrAlgorithm means the MAC algorithm does not belong to the key spec.
var ErrAlgorithm = errors.New("mac: algorithm not valid for this key spec")

func hashFor(spec keyspec.Spec, alg keyspec.MACAlgorithm) (func() hash.Hash, error) {
	algs := spec.MACAlgorithms()
	if len(algs) != 1 || algs[0] != alg {
		return nil, ErrAlgorithm
	}
	switch alg {
	case keyspec.HMACSHA224:
		return sha256.New224, nil
	case keyspec.HMACSHA256:
		return sha256.New, nil
	case keyspec.HMACSHA384:
		return sha512.New384, nil
	case keyspec.HMACSHA512:
		return sha512.New, nil
	}
	return nil, ErrAlgorithm
}

// Sum returns HMAC(key, msg) for alg.
func Sum(spec keyspec.Spec, key secret.Bytes, alg keyspec.MACAlgorithm, msg []byte) ([]byte, error) {
	h, err := hashFor(spec, alg)
	if err != nil {
		return nil, err
	}
	m := hmac.New(h, key.Expose())
	m.Write(msg)
	return m.Sum(nil), nil
}
