// Package regionkey holds a region's replication key: the key pair other
// regions seal multi-Region key material to when they send it here.
//
// Sealing is HPKE (RFC 9180) in base mode with the hybrid KEM
// ML-KEM-768+X25519, HKDF-SHA256 and AES-256-GCM (Go's crypto/hpke): a
// recorded replication stream stays confidential against a future quantum
// adversary as long as either half holds. Every sealed material carries an
// info string that binds it to its sender, recipient, key and material id,
// so a sealed blob opens only for the message it was made for.
//
// The private key never leaves a Key except through its file (written
// once, mode 0600, like the writer key beside it); the public half is
// announced to peer regions, signed by the region's writer key, and each
// peer records it in its ledger. Material is never sealed to anything but
// a recorded peer key, and never to a root key.
//
// Safe for concurrent use.
package regionkey

import (
	"crypto/hpke"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/keyledger/keyledger/crypto/secret"
)

func kem() hpke.KEM   { return hpke.MLKEM768X25519() }
func kdf() hpke.KDF   { return hpke.HKDFSHA256() }
func aead() hpke.AEAD { return hpke.AES256GCM() }

// ErrOpen is every failure to open a sealed material.
var ErrOpen = errors.New("regionkey: sealed material does not open")

// Key is a region's private replication key.
type Key struct {
	priv hpke.PrivateKey
	pub  []byte
}

// Generate makes a new key.
func Generate() (*Key, error) {
	priv, err := kem().GenerateKey()
	if err != nil {
		return nil, err
	}
	return &Key{priv: priv, pub: priv.PublicKey().Bytes()}, nil
}

// String never shows the private key.
func (k *Key) String() string { return "region replication key (private half REDACTED)" }

// Public is the public half, as peers record it.
func (k *Key) Public() []byte { return append([]byte(nil), k.pub...) }

// PublicText is Public in base64.
func (k *Key) PublicText() string { return base64.StdEncoding.EncodeToString(k.pub) }

// PublicKey is a peer region's public replication key.
type PublicKey struct{ pk hpke.PublicKey }

// ParsePublic reads a public key in its text form (base64).
func ParsePublic(text string) (PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
	if err != nil {
		return PublicKey{}, errors.New("regionkey: malformed public key")
	}
	pk, err := kem().NewPublicKey(b)
	if err != nil {
		return PublicKey{}, errors.New("regionkey: malformed public key")
	}
	return PublicKey{pk: pk}, nil
}

// Seal seals material to pub, bound to info.
func Seal(pub PublicKey, material secret.Bytes, info []byte) ([]byte, error) {
	if pub.pk == nil {
		return nil, errors.New("regionkey: no public key")
	}
	return hpke.Seal(pub.pk, kdf(), aead(), info, material.Expose())
}

// Open opens what Seal sealed to k with the same info.
func (k *Key) Open(sealed, info []byte) (secret.Bytes, error) {
	pt, err := hpke.Open(k.priv, kdf(), aead(), info, sealed)
	if err != nil {
		return secret.Bytes{}, ErrOpen
	}
	return secret.New(pt), nil
}

// LoadOrCreate reads the key file at path (the base64 private key), or
// generates one there with mode 0600. It reports whether it created it.
func LoadOrCreate(path string) (*Key, bool, error) {
	k, err := Load(path)
	if err == nil {
		return k, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	if k, err = Generate(); err != nil {
		return nil, false, err
	}
	b, err := k.priv.Bytes()
	if err != nil {
		return nil, false, err
	}
	text := base64.StdEncoding.EncodeToString(b) + "\n"
	clear(b)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return nil, false, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, false, err
	}
	return k, true, f.Close()
}

// Load reads a key file.
func Load(path string) (*Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	defer clear(data)
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, fmt.Errorf("regionkey: key file %s is malformed", path)
	}
	defer clear(b)
	priv, err := kem().NewPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("regionkey: key file %s is malformed", path)
	}
	return &Key{priv: priv, pub: priv.PublicKey().Bytes()}, nil
}
