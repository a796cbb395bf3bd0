// Package writer holds the key a keyledger instance signs its ledger
// messages with, so that verification needs no trust in the transport.
//
// Each group-commit message is signed with Ed25519 for its place. A
// message on one of the chains several writers write (package chain) is
// signed over
//
//	"keyledger ledger message v2\n" || chain || "\n" || decimal previous || "\n" || SHA-256(message bytes)
//
// where previous is the stream sequence of the previous message on the
// same chain (0 for its first): exactly what the writer's
// Nats-Expected-Last-Subject-Sequence asserts, so a writer signs its place
// without knowing, or contending for, the stream sequence the message will
// get. A message on the legacy chain (ledgers from before chains) is signed
// over
//
//	"keyledger ledger message v1\n" || decimal stream sequence || "\n" || SHA-256(message bytes)
//
// the stream sequence it must be stored at. Either way a signed message is
// valid at exactly one place: a captured batch replayed later, or moved to
// another chain, is out of place even before its links are checked, and
// the domains keep one kind of signature from passing as the other. (The
// message is hashed once with SHA-256, which this hardware accelerates,
// rather than twice with Ed25519's SHA-512: a group commit can be a
// megabyte.) The message bytes are the exact
// stored event lines the hash chain covers; the signature travels in NATS
// headers beside them.
//
// A writer is named by its ID, the hex of the first 16 bytes of SHA-256 of
// its public key. A Key never leaves its file except through Public. It is
// safe for concurrent use.
package writer

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Header names carried by every signed ledger message.
const (
	HeaderWriter    = "Keyledger-Writer"
	HeaderSignature = "Keyledger-Signature"
	// HeaderImported marks a message a restore wrote (package ledger,
	// Import): its events were another ledger's, re-signed by the
	// restoring writer, on whichever writer's data chain they were.
	HeaderImported = "Keyledger-Imported"
)

const (
	domain   = "keyledger ledger message v1\n"
	domainV2 = "keyledger ledger message v2\n"
)

// Key is a writer's private signing key.
type Key struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	id   string
}

// Generate makes a new random writer key.
func Generate() *Key {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return fromPrivate(priv)
}

// FromSeed derives a key from a 32-byte Ed25519 seed.
func FromSeed(seed []byte) (*Key, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, errors.New("writer: a seed is 32 bytes")
	}
	return fromPrivate(ed25519.NewKeyFromSeed(seed)), nil
}

func fromPrivate(priv ed25519.PrivateKey) *Key {
	pub := priv.Public().(ed25519.PublicKey)
	return &Key{priv: priv, pub: pub, id: ID(pub)}
}

// ID names the key (see ID).
func (k *Key) ID() string { return k.id }

// Public returns the public half.
func (k *Key) Public() ed25519.PublicKey { return k.pub }

// PublicText is the public half in its text form (base64).
func (k *Key) PublicText() string { return base64.StdEncoding.EncodeToString(k.pub) }

// String never shows the private key.
func (k *Key) String() string { return "writer key " + k.id }

// Sign signs a message to be stored at stream sequence seq.
func (k *Key) Sign(seq uint64, data []byte) []byte {
	return ed25519.Sign(k.priv, signingInput(seq, data))
}

// SignAt signs a message for its place on chain: after the message at
// stream sequence prev on that chain (0: the chain's first).
func (k *Key) SignAt(chain string, prev uint64, data []byte) []byte {
	return ed25519.Sign(k.priv, signingInputAt(chain, prev, data))
}

// SignRaw signs data that is not a ledger message (a stored base). data
// must start with a domain string of its own, so the signature never
// passes as a message's.
func (k *Key) SignRaw(data []byte) []byte { return ed25519.Sign(k.priv, data) }

// ID is the writer ID of a public key.
func ID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:16])
}

// ParsePublic reads a public key in its text form.
func ParsePublic(text string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("writer: malformed public key")
	}
	return ed25519.PublicKey(b), nil
}

// Verify reports whether sig is pub's signature of data at stream sequence seq.
func Verify(pub ed25519.PublicKey, seq uint64, data, sig []byte) bool {
	return len(sig) == ed25519.SignatureSize && ed25519.Verify(pub, signingInput(seq, data), sig)
}

// VerifyAt reports whether sig is pub's signature of data on chain after
// the message at stream sequence prev.
func VerifyAt(pub ed25519.PublicKey, chain string, prev uint64, data, sig []byte) bool {
	return len(sig) == ed25519.SignatureSize && ed25519.Verify(pub, signingInputAt(chain, prev, data), sig)
}

func signingInputAt(chain string, prev uint64, data []byte) []byte {
	sum := sha256.Sum256(data)
	b := make([]byte, 0, len(domainV2)+len(chain)+22+len(sum))
	b = append(b, domainV2...)
	b = append(b, chain...)
	b = append(b, '\n')
	b = strconv.AppendUint(b, prev, 10)
	b = append(b, '\n')
	return append(b, sum[:]...)
}

func signingInput(seq uint64, data []byte) []byte {
	sum := sha256.Sum256(data)
	b := make([]byte, 0, len(domain)+21+len(sum))
	b = append(b, domain...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, '\n')
	return append(b, sum[:]...)
}

// LoadOrCreate reads the writer key file at path (the base64 seed), or
// generates one there with mode 0600. It reports whether it created it.
func LoadOrCreate(path string) (*Key, bool, error) {
	k, err := Load(path)
	if err == nil {
		return k, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	k = Generate()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, err
	}
	text := base64.StdEncoding.EncodeToString(k.priv.Seed()) + "\n"
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

// Load reads a writer key file (the base64 Ed25519 seed).
func Load(path string) (*Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	defer clear(data)
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, fmt.Errorf("writer: key file %s is malformed", path)
	}
	defer clear(seed)
	return FromSeed(seed)
}
