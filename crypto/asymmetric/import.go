package asymmetric

import (
	"crypto/rsa"

	"github.com/keyledger/keyledger/crypto/keyspec"
	"github.com/keyledger/keyledger/crypto/keywrap"
	"github.com/keyledger/keyledger/crypto/secret"
)

// Wrapping algorithms for imported key material (GetParametersForImport).
const (
	WrapRSAESOAEPSHA1       = "RSAES_OAEP_SHA_1"
	WrapRSAESOAEPSHA256     = "RSAES_OAEP_SHA_256"
	WrapRSAAESKeyWrapSHA1   = "RSA_AES_KEY_WRAP_SHA_1"
	WrapRSAAESKeyWrapSHA256 = "RSA_AES_KEY_WRAP_SHA_256"
)

// UnwrapImport decrypts key material wrapped for import under this RSA
// wrapping key. RSA_AES_KEY_WRAP_* is an OAEP-encrypted 256-bit AES key
// followed by the material wrapped under it with RFC 5649 key wrap.
func (k *PrivateKey) UnwrapImport(alg string, wrapped []byte) (secret.Bytes, error) {
	key, ok := k.key.(*rsa.PrivateKey)
	if !ok {
		return secret.Bytes{}, ErrDecrypt
	}
	hash := keyspec.AlgRSAESOAEPSHA1
	switch alg {
	case WrapRSAESOAEPSHA256, WrapRSAAESKeyWrapSHA256:
		hash = keyspec.AlgRSAESOAEPSHA256
	case WrapRSAESOAEPSHA1, WrapRSAAESKeyWrapSHA1:
	default:
		return secret.Bytes{}, inputErr("Wrapping algorithm %s is not supported.", alg)
	}
	if alg == WrapRSAESOAEPSHA1 || alg == WrapRSAESOAEPSHA256 {
		pt, err := rsa.DecryptOAEP(oaepHash(hash).New(), nil, key, wrapped, nil)
		if err != nil {
			return secret.Bytes{}, ErrDecrypt
		}
		s := secret.New(pt)
		clear(pt)
		return s, nil
	}
	n := key.Size()
	if len(wrapped) <= n {
		return secret.Bytes{}, ErrDecrypt
	}
	aesKey, err := rsa.DecryptOAEP(oaepHash(hash).New(), nil, key, wrapped[:n], nil)
	if err != nil || len(aesKey) != 32 {
		return secret.Bytes{}, ErrDecrypt
	}
	defer clear(aesKey)
	pt, err := keywrap.Unwrap(aesKey, wrapped[n:])
	if err != nil {
		return secret.Bytes{}, ErrDecrypt
	}
	s := secret.New(pt)
	clear(pt)
	return s, nil
}
