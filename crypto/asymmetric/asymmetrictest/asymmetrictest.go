// Package asymmetrictest checks keyledger's signatures the way a relying
// party would: from the public key alone (SubjectPublicKeyInfo DER, as
// GetPublicKey returns it), with libraries outside keyledger's signing path
// — crypto/x509 and the standard library, filippo.io/mldsa, and decred's
// secp256k1 for the curve x509 lacks. It is for tests; nothing in the
// service imports it.
package asymmetrictest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"

	"filippo.io/mldsa"
	mldsax509 "filippo.io/mldsa/x509"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	secpecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"

	"github.com/keyledger/keyledger/crypto/keyspec"
)

// Verify reports whether sig is a valid signature by the key of spec whose
// public key is pubDER over msg (the message itself; for
// ED25519_PH_SHA_512, the SHA-512 digest is taken here). An error means the
// public key does not parse.
func Verify(spec keyspec.Spec, pubDER []byte, alg keyspec.SigningAlgorithm, msg, sig []byte) (bool, error) {
	switch spec {
	case keyspec.ECCSECGP256K1:
		pub, err := parseSecp256k1(pubDER)
		if err != nil {
			return false, err
		}
		s, err := secpecdsa.ParseDERSignature(sig)
		d := sha256.Sum256(msg)
		return err == nil && s.Verify(d[:], pub), nil
	case keyspec.MLDSA44, keyspec.MLDSA65, keyspec.MLDSA87:
		pub, err := mldsax509.ParsePKIXPublicKey(pubDER)
		if err != nil {
			return false, err
		}
		return mldsa.Verify(pub.(*mldsa.PublicKey), msg, sig, nil) == nil, nil
	}
	pub, err := x509.ParsePKIXPublicKey(pubDER)
	if err != nil {
		return false, err
	}
	h := hashOf(alg)
	var d []byte
	if h != 0 {
		w := h.New()
		w.Write(msg)
		d = w.Sum(nil)
	}
	switch p := pub.(type) {
	case *rsa.PublicKey:
		switch alg {
		case keyspec.RSASSAPSSSHA256, keyspec.RSASSAPSSSHA384, keyspec.RSASSAPSSSHA512:
			return rsa.VerifyPSS(p, h, d, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil, nil
		}
		return rsa.VerifyPKCS1v15(p, h, d, sig) == nil, nil
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(p, d, sig), nil
	case ed25519.PublicKey:
		if alg == keyspec.ED25519PHSHA512 {
			return ed25519.VerifyWithOptions(p, d, sig, &ed25519.Options{Hash: crypto.SHA512}) == nil, nil
		}
		return ed25519.Verify(p, msg, sig), nil
	}
	return false, fmt.Errorf("asymmetrictest: unexpected public key %T", pub)
}

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

var (
	oidECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidSecp256k1   = asn1.ObjectIdentifier{1, 3, 132, 0, 10}
)

// parseSecp256k1 reads a secp256k1 SubjectPublicKeyInfo (RFC 5480).
func parseSecp256k1(der []byte) (*secp256k1.PublicKey, error) {
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if rest, err := asn1.Unmarshal(der, &spki); err != nil || len(rest) != 0 {
		return nil, errors.New("asymmetrictest: not a SubjectPublicKeyInfo")
	}
	var curve asn1.ObjectIdentifier
	if !spki.Algorithm.Algorithm.Equal(oidECPublicKey) {
		return nil, errors.New("asymmetrictest: not an EC key")
	}
	if _, err := asn1.Unmarshal(spki.Algorithm.Parameters.FullBytes, &curve); err != nil || !curve.Equal(oidSecp256k1) {
		return nil, errors.New("asymmetrictest: not a secp256k1 key")
	}
	return secp256k1.ParsePubKey(spki.PublicKey.Bytes)
}
