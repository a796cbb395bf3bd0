// Package rootkey loads or creates the 256-bit root key and wraps key
// material under it.
//
// All key material at rest (the deletable material store) is wrapped here;
// the root key itself only ever lives in a secret.Bytes. A Key is immutable
// and safe for concurrent use.
package rootkey

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/keyledger/keyledger/crypto/aead"
	"github.com/keyledger/keyledger/crypto/secret"
)

// Size is the root key length in bytes.
const Size = 32

const wrapLabel = "keyledger/v1 root key wrap"

// ErrUnwrap is the single failure of Unwrap: wrong root key, wrong material
// id, or damaged bytes.
var ErrUnwrap = errors.New("rootkey: cannot unwrap key material")

// Key is the root key.
type Key struct {
	k secret.Bytes
}

// New returns a root key holding a copy of b, which must be Size bytes.
func New(b []byte) (Key, error) {
	if len(b) != Size {
		return Key{}, fmt.Errorf("rootkey: need %d bytes, got %d", Size, len(b))
	}
	return Key{k: secret.New(b)}, nil
}

// Generate returns a fresh random root key.
func Generate() Key { return Key{k: secret.Random(Size)} }

// Load reads a root key file: 32 raw bytes, or their base64 or hex text.
func Load(path string) (Key, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Key{}, err
	}
	defer clear(raw)
	if len(raw) == Size {
		return New(raw)
	}
	text := strings.TrimSpace(string(raw))
	if b, err := base64.StdEncoding.DecodeString(text); err == nil && len(b) == Size {
		defer clear(b)
		return New(b)
	}
	if b, err := hex.DecodeString(text); err == nil && len(b) == Size {
		defer clear(b)
		return New(b)
	}
	return Key{}, fmt.Errorf("rootkey: %s holds no %d-byte key (raw, base64 or hex)", path, Size)
}

// LoadOrCreate loads path, or if it does not exist, writes a new random key
// there with mode 0600. created reports whether a key was generated.
func LoadOrCreate(path string) (k Key, created bool, err error) {
	k, err = Load(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return Key{}, false, err
	}
	k = Generate()
	text := base64.StdEncoding.EncodeToString(k.k.Expose()) + "\n"
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return Key{}, false, err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return Key{}, false, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return Key{}, false, err
	}
	return k, true, f.Close()
}

// Bytes returns a copy of the key, for sealing it (package seal).
func (k Key) Bytes() secret.Bytes { return secret.New(k.k.Expose()) }

// Fingerprint is a short public identifier of the root key, safe to log.
func (k Key) Fingerprint() string {
	h := sha256.New()
	h.Write([]byte("keyledger/v1 root key fingerprint\x00"))
	h.Write(k.k.Expose())
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// Wrap encrypts key material under the root key, bound to materialID so a
// wrapped blob cannot be swapped for another key's.
func (k Key) Wrap(material secret.Bytes, materialID string) []byte {
	return aead.Seal(nil, k.k, wrapLabel, material.Expose(), []byte(materialID))
}

// Unwrap reverses Wrap.
func (k Key) Unwrap(wrapped []byte, materialID string) (secret.Bytes, error) {
	pt, err := aead.Open(k.k, wrapLabel, wrapped, []byte(materialID))
	if err != nil {
		return secret.Bytes{}, ErrUnwrap
	}
	s := secret.New(pt)
	clear(pt)
	return s, nil
}

func (Key) String() string   { return "rootkey.Key(REDACTED)" }
func (Key) GoString() string { return "rootkey.Key(REDACTED)" }
