package asymmetric

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/keyledger/keyledger/crypto/secret"
)

// Go's crypto/x509 does not know secp256k1, so its PKCS#8 (RFC 5208 with an
// RFC 5915 ECPrivateKey) and SubjectPublicKeyInfo (RFC 5480) encodings are
// written here.

var (
	oidECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidSecp256k1   = asn1.ObjectIdentifier{1, 3, 132, 0, 10}
)

type pkcs8 struct {
	Version    int
	Algorithm  pkix.AlgorithmIdentifier
	PrivateKey []byte
}

type ecPrivateKey struct {
	Version    int
	PrivateKey []byte
	PublicKey  asn1.BitString `asn1:"optional,explicit,tag:1"`
}

type spki struct {
	Algorithm pkix.AlgorithmIdentifier
	PublicKey asn1.BitString
}

func secp256k1Algorithm() pkix.AlgorithmIdentifier {
	params, _ := asn1.Marshal(oidSecp256k1)
	return pkix.AlgorithmIdentifier{Algorithm: oidECPublicKey, Parameters: asn1.RawValue{FullBytes: params}}
}

func marshalSecp256k1PKCS8(k *secp256k1.PrivateKey) secret.Bytes {
	scalar := k.Serialize()
	defer clear(scalar)
	pub := k.PubKey().SerializeUncompressed()
	inner, err := asn1.Marshal(ecPrivateKey{Version: 1, PrivateKey: scalar, PublicKey: asn1.BitString{Bytes: pub, BitLength: 8 * len(pub)}})
	if err != nil {
		panic(err)
	}
	defer clear(inner)
	der, err := asn1.Marshal(pkcs8{Algorithm: secp256k1Algorithm(), PrivateKey: inner})
	if err != nil {
		panic(err)
	}
	s := secret.New(der)
	clear(der)
	return s
}

func parseSecp256k1PKCS8(der []byte) (*secp256k1.PrivateKey, error) {
	var p pkcs8
	if rest, err := asn1.Unmarshal(der, &p); err != nil || len(rest) != 0 {
		return nil, errors.New("asymmetric: not PKCS#8")
	}
	var curve asn1.ObjectIdentifier
	if !p.Algorithm.Algorithm.Equal(oidECPublicKey) {
		return nil, errors.New("asymmetric: not an EC key")
	}
	if _, err := asn1.Unmarshal(p.Algorithm.Parameters.FullBytes, &curve); err != nil || !curve.Equal(oidSecp256k1) {
		return nil, errors.New("asymmetric: not a secp256k1 key")
	}
	var ec ecPrivateKey
	if _, err := asn1.Unmarshal(p.PrivateKey, &ec); err != nil || ec.Version != 1 || len(ec.PrivateKey) != 32 {
		return nil, errors.New("asymmetric: malformed ECPrivateKey")
	}
	k := secp256k1.PrivKeyFromBytes(ec.PrivateKey)
	if k.Key.IsZero() {
		return nil, errors.New("asymmetric: zero private key")
	}
	return k, nil
}

func marshalSecp256k1SPKI(pub *secp256k1.PublicKey) []byte {
	point := pub.SerializeUncompressed()
	der, err := asn1.Marshal(spki{Algorithm: secp256k1Algorithm(), PublicKey: asn1.BitString{Bytes: point, BitLength: 8 * len(point)}})
	if err != nil {
		panic(err)
	}
	return der
}
