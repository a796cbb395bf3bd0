package asymmetric

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"

	"filippo.io/mldsa"
	"filippo.io/mldsa/mldsacrypto"
	mldsax509 "filippo.io/mldsa/x509"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	secpecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"

	"github.com/keyledger/keyledger/crypto/keyspec"
	"github.com/keyledger/keyledger/crypto/secret"
)

var (
	// ErrInvalidSignature means a signature does not verify.
	ErrInvalidSignature = errors.New("asymmetric: invalid signature")
	// ErrDecrypt is every RSA decryption failure.
	ErrDecrypt = errors.New("asymmetric: decryption failed")
	// ErrUnsupported means the operation exists in AWS but not here.
	ErrUnsupported = errors.New("asymmetric: not supported")
)

// InputError is a message or parameter the algorithm cannot take; its text
// names the constraint and never the input.
type InputError struct{ Reason string }

func (e *InputError) Error() string { return e.Reason }

func inputErr(format string, args ...any) error {
	return &InputError{Reason: fmt.Sprintf(format, args...)}
}

// PrivateKey is a parsed private key of one spec.
type PrivateKey struct {
	spec keyspec.Spec
	key  any // *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey, *secp256k1.PrivateKey, *mldsa.PrivateKey
	pub  []byte
}

const redacted = "asymmetric.PrivateKey(REDACTED)"

func (PrivateKey) String() string               { return redacted }
func (PrivateKey) GoString() string             { return redacted }
func (PrivateKey) Format(f fmt.State, _ rune)   { _, _ = f.Write([]byte(redacted)) }
func (PrivateKey) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (PrivateKey) MarshalJSON() ([]byte, error) { return nil, secret.ErrMarshal }
func (k *PrivateKey) PublicKeyDER() []byte      { return append([]byte(nil), k.pub...) }

// Generate returns new private key material for spec.
func Generate(spec keyspec.Spec) (secret.Bytes, error) {
	var key any
	var err error
	switch spec {
	case keyspec.RSA2048, keyspec.RSA3072, keyspec.RSA4096:
		key, err = rsa.GenerateKey(rand.Reader, rsaBits(spec))
	case keyspec.ECCNISTP256, keyspec.ECCNISTP384, keyspec.ECCNISTP521:
		key, err = ecdsa.GenerateKey(curve(spec), rand.Reader)
	case keyspec.ECCEdwards25519:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	case keyspec.ECCSECGP256K1:
		var k *secp256k1.PrivateKey
		if k, err = secp256k1.GeneratePrivateKey(); err == nil {
			return marshalSecp256k1PKCS8(k), nil
		}
	case keyspec.MLDSA44, keyspec.MLDSA65, keyspec.MLDSA87:
		return secret.Random(32), nil
	default:
		return secret.Bytes{}, fmt.Errorf("asymmetric: %s is not an asymmetric spec this build generates", spec)
	}
	if err != nil {
		return secret.Bytes{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return secret.Bytes{}, err
	}
	s := secret.New(der)
	clear(der)
	return s, nil
}

// Parse reads material made by Generate (or imported) and checks that it is
// a key of spec.
func Parse(spec keyspec.Spec, material secret.Bytes) (*PrivateKey, error) {
	bad := fmt.Errorf("asymmetric: key material is not a %s private key", spec)
	var key any
	var err error
	switch spec {
	case keyspec.MLDSA44, keyspec.MLDSA65, keyspec.MLDSA87:
		if material.Len() != 32 {
			// Imported ML-DSA keys arrive as PKCS#8 holding the seed.
			parsed, perr := mldsax509.ParsePKCS8PrivateKey(material.Expose())
			if perr != nil {
				return nil, bad
			}
			key = parsed
		} else if key, err = mldsa.NewPrivateKey(mldsaParams(spec), material.Expose()); err != nil {
			return nil, bad
		}
	case keyspec.ECCSECGP256K1:
		if key, err = parseSecp256k1PKCS8(material.Expose()); err != nil {
			return nil, bad
		}
	default:
		if key, err = x509.ParsePKCS8PrivateKey(material.Expose()); err != nil {
			return nil, bad
		}
	}
	if !matches(spec, key) {
		return nil, bad
	}
	pub, err := publicDER(key)
	if err != nil {
		return nil, err
	}
	return &PrivateKey{spec: spec, key: key, pub: pub}, nil
}

func matches(spec keyspec.Spec, key any) bool {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return rsaBits(spec) != 0 && k.N.BitLen() == rsaBits(spec)
	case *ecdsa.PrivateKey:
		return curve(spec) != nil && k.Curve == curve(spec)
	case ed25519.PrivateKey:
		return spec == keyspec.ECCEdwards25519
	case *secp256k1.PrivateKey:
		return spec == keyspec.ECCSECGP256K1
	case *mldsa.PrivateKey:
		return mldsaParams(spec) != (mldsa.Parameters{}) && k.PublicKey().Parameters() == mldsaParams(spec)
	}
	return false
}

func publicDER(key any) ([]byte, error) {
	switch k := key.(type) {
	case *secp256k1.PrivateKey:
		return marshalSecp256k1SPKI(k.PubKey()), nil
	case *mldsa.PrivateKey:
		return mldsax509.MarshalPKIXPublicKey(k.PublicKey())
	case crypto.Signer:
		return x509.MarshalPKIXPublicKey(k.Public())
	}
	return nil, errors.New("asymmetric: unknown key type")
}

func rsaBits(spec keyspec.Spec) int {
	switch spec {
	case keyspec.RSA2048:
		return 2048
	case keyspec.RSA3072:
		return 3072
	case keyspec.RSA4096:
		return 4096
	}
	return 0
}

func curve(spec keyspec.Spec) elliptic.Curve {
	switch spec {
	case keyspec.ECCNISTP256:
		return elliptic.P256()
	case keyspec.ECCNISTP384:
		return elliptic.P384()
	case keyspec.ECCNISTP521:
		return elliptic.P521()
	}
	return nil
}

func mldsaParams(spec keyspec.Spec) mldsa.Parameters {
	switch spec {
	case keyspec.MLDSA44:
		return mldsa.MLDSA44()
	case keyspec.MLDSA65:
		return mldsa.MLDSA65()
	case keyspec.MLDSA87:
		return mldsa.MLDSA87()
	}
	return mldsa.Parameters{}
}

// hashOf is the digest an algorithm signs.
func hashOf(alg keyspec.SigningAlgorithm) crypto.Hash {
	switch alg {
	case keyspec.RSASSAPSSSHA256, keyspec.RSASSAPKCS1V15SHA256, keyspec.ECDSASHA256:
		return crypto.SHA256
	case keyspec.RSASSAPSSSHA384, keyspec.RSASSAPKCS1V15SHA384, keyspec.ECDSASHA384:
		return crypto.SHA384
	case keyspec.RSASSAPSSSHA512, keyspec.RSASSAPKCS1V15SHA512, keyspec.ECDSASHA512, keyspec.ED25519PHSHA512:
		return crypto.SHA512
	}
	return 0
}

// digest returns what the algorithm signs for a message of type mt.
func digest(alg keyspec.SigningAlgorithm, mt keyspec.MessageType, msg []byte) ([]byte, error) {
	h := hashOf(alg)
	switch mt {
	case keyspec.Raw:
		w := h.New()
		w.Write(msg)
		return w.Sum(nil), nil
	case keyspec.Digest:
		if len(msg) != h.Size() {
			return nil, inputErr("Digest is invalid length for algorithm %s: it must be %d bytes.", alg, h.Size())
		}
		return msg, nil
	}
	return nil, inputErr("MessageType %s is not valid for signing algorithm %s.", mt, alg)
}

func allowed(spec keyspec.Spec, alg keyspec.SigningAlgorithm) bool {
	for _, a := range spec.SigningAlgorithms(keyspec.SignVerify) {
		if a == alg {
			return true
		}
	}
	return false
}

// Sign signs msg (a message or a digest, per mt) with alg.
func (k *PrivateKey) Sign(alg keyspec.SigningAlgorithm, mt keyspec.MessageType, msg []byte) ([]byte, error) {
	if !allowed(k.spec, alg) {
		return nil, inputErr("Signing algorithm %s is not valid for key spec %s.", alg, k.spec)
	}
	switch key := k.key.(type) {
	case *rsa.PrivateKey:
		d, err := digest(alg, mt, msg)
		if err != nil {
			return nil, err
		}
		if isPSS(alg) {
			return rsa.SignPSS(rand.Reader, key, hashOf(alg), d, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
		return rsa.SignPKCS1v15(rand.Reader, key, hashOf(alg), d)
	case *ecdsa.PrivateKey:
		d, err := digest(alg, mt, msg)
		if err != nil {
			return nil, err
		}
		return ecdsa.SignASN1(rand.Reader, key, d)
	case *secp256k1.PrivateKey:
		d, err := digest(alg, mt, msg)
		if err != nil {
			return nil, err
		}
		// RFC 6979 nonces; always low-S, as blockchains require.
		return secpecdsa.Sign(key, d).Serialize(), nil
	case ed25519.PrivateKey:
		switch {
		case alg == keyspec.ED25519SHA512 && mt == keyspec.Raw:
			return ed25519.Sign(key, msg), nil
		case alg == keyspec.ED25519PHSHA512 && mt == keyspec.Digest:
			if len(msg) != sha512.Size {
				return nil, inputErr("Digest is invalid length for algorithm %s: it must be %d bytes.", alg, sha512.Size)
			}
			return key.Sign(nil, msg, &ed25519.Options{Hash: crypto.SHA512})
		}
		return nil, inputErr("%s requires MessageType %s.", alg, map[keyspec.SigningAlgorithm]string{
			keyspec.ED25519SHA512: "RAW", keyspec.ED25519PHSHA512: "DIGEST"}[alg])
	case *mldsa.PrivateKey:
		switch mt {
		case keyspec.Raw:
			return key.Sign(nil, msg, &mldsa.Options{})
		case keyspec.ExternalMu:
			if len(msg) != 64 {
				return nil, inputErr("An EXTERNAL_MU message must be the 64-byte mu of FIPS 204.")
			}
			return key.Sign(nil, msg, mldsacrypto.MLDSAMu)
		}
		return nil, inputErr("MessageType %s is not valid for %s; use RAW or EXTERNAL_MU.", mt, alg)
	}
	return nil, ErrUnsupported
}

// Verify checks a signature made by Sign with the same algorithm and
// message type.
func (k *PrivateKey) Verify(alg keyspec.SigningAlgorithm, mt keyspec.MessageType, msg, sig []byte) error {
	if !allowed(k.spec, alg) {
		return inputErr("Signing algorithm %s is not valid for key spec %s.", alg, k.spec)
	}
	ok := false
	switch key := k.key.(type) {
	case *rsa.PrivateKey:
		d, err := digest(alg, mt, msg)
		if err != nil {
			return err
		}
		if isPSS(alg) {
			ok = rsa.VerifyPSS(&key.PublicKey, hashOf(alg), d, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
		} else {
			ok = rsa.VerifyPKCS1v15(&key.PublicKey, hashOf(alg), d, sig) == nil
		}
	case *ecdsa.PrivateKey:
		d, err := digest(alg, mt, msg)
		if err != nil {
			return err
		}
		ok = ecdsa.VerifyASN1(&key.PublicKey, d, sig)
	case *secp256k1.PrivateKey:
		d, err := digest(alg, mt, msg)
		if err != nil {
			return err
		}
		s, err := secpecdsa.ParseDERSignature(sig)
		ok = err == nil && s.Verify(d, key.PubKey())
	case ed25519.PrivateKey:
		pub := key.Public().(ed25519.PublicKey)
		switch {
		case alg == keyspec.ED25519SHA512 && mt == keyspec.Raw:
			ok = ed25519.Verify(pub, msg, sig)
		case alg == keyspec.ED25519PHSHA512 && mt == keyspec.Digest:
			if len(msg) != sha512.Size {
				return inputErr("Digest is invalid length for algorithm %s: it must be %d bytes.", alg, sha512.Size)
			}
			ok = ed25519.VerifyWithOptions(pub, msg, sig, &ed25519.Options{Hash: crypto.SHA512}) == nil
		default:
			return inputErr("MessageType %s is not valid for signing algorithm %s.", mt, alg)
		}
	case *mldsa.PrivateKey:
		switch mt {
		case keyspec.Raw:
			ok = mldsa.Verify(key.PublicKey(), msg, sig, nil) == nil
		case keyspec.ExternalMu:
			return ErrUnsupported
		default:
			return inputErr("MessageType %s is not valid for %s; use RAW or EXTERNAL_MU.", mt, alg)
		}
	default:
		return ErrUnsupported
	}
	if !ok {
		return ErrInvalidSignature
	}
	return nil
}

func isPSS(alg keyspec.SigningAlgorithm) bool {
	return alg == keyspec.RSASSAPSSSHA256 || alg == keyspec.RSASSAPSSSHA384 || alg == keyspec.RSASSAPSSSHA512
}

func oaepHash(alg keyspec.EncryptionAlgorithm) crypto.Hash {
	switch alg {
	case keyspec.AlgRSAESOAEPSHA1:
		return crypto.SHA1
	case keyspec.AlgRSAESOAEPSHA256:
		return crypto.SHA256
	}
	return 0
}

// MaxPlaintext is the largest plaintext an RSA key of spec can encrypt with
// alg (the AWS Encrypt documentation's table), or 0 if it cannot.
func MaxPlaintext(spec keyspec.Spec, alg keyspec.EncryptionAlgorithm) int {
	h := oaepHash(alg)
	if rsaBits(spec) == 0 || h == 0 {
		return 0
	}
	return rsaBits(spec)/8 - 2*h.Size() - 2
}

// Encrypt encrypts with RSAES-OAEP under the key's public half.
func (k *PrivateKey) Encrypt(alg keyspec.EncryptionAlgorithm, plaintext []byte) ([]byte, error) {
	key, ok := k.key.(*rsa.PrivateKey)
	max := MaxPlaintext(k.spec, alg)
	if !ok || max == 0 {
		return nil, inputErr("Encryption algorithm %s is not valid for key spec %s.", alg, k.spec)
	}
	if len(plaintext) > max {
		return nil, inputErr("Plaintext is too long for %s with %s: the limit is %d bytes.", k.spec, alg, max)
	}
	return rsa.EncryptOAEP(oaepHash(alg).New(), rand.Reader, &key.PublicKey, plaintext, nil)
}

// Decrypt reverses Encrypt.
func (k *PrivateKey) Decrypt(alg keyspec.EncryptionAlgorithm, ciphertext []byte) ([]byte, error) {
	key, ok := k.key.(*rsa.PrivateKey)
	if !ok || oaepHash(alg) == 0 {
		return nil, inputErr("Encryption algorithm %s is not valid for key spec %s.", alg, k.spec)
	}
	pt, err := rsa.DecryptOAEP(oaepHash(alg).New(), nil, key, ciphertext, nil)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// SharedSecret runs ECDH with a peer's public key (DER SubjectPublicKeyInfo
// on the same curve) and returns the raw shared secret.
func (k *PrivateKey) SharedSecret(peerDER []byte) (secret.Bytes, error) {
	key, ok := k.key.(*ecdsa.PrivateKey)
	if !ok {
		return secret.Bytes{}, inputErr("Key agreement is not valid for key spec %s.", k.spec)
	}
	pub, err := x509.ParsePKIXPublicKey(peerDER)
	if err != nil {
		return secret.Bytes{}, inputErr("PublicKey must be a DER-encoded X.509 SubjectPublicKeyInfo.")
	}
	peer, ok := pub.(*ecdsa.PublicKey)
	if !ok || peer.Curve != key.Curve {
		return secret.Bytes{}, inputErr("PublicKey must be an elliptic-curve key on the same curve as %s.", k.spec)
	}
	ep, err := peer.ECDH()
	if err != nil {
		return secret.Bytes{}, inputErr("PublicKey is not a valid point.")
	}
	priv, err := key.ECDH()
	if err != nil {
		return secret.Bytes{}, err
	}
	shared, err := priv.ECDH(ep)
	if err != nil {
		return secret.Bytes{}, inputErr("PublicKey is not a valid point.")
	}
	s := secret.New(shared)
	clear(shared)
	return s, nil
}
