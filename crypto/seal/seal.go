// Package seal keeps the root key sealed at rest: a seal file holds every
// root key version wrapped under a key-encryption key (KEK) that is never
// stored. The KEK comes from a passphrase (Argon2id, parameters in the
// file) or from Shamir shares held by operators; nothing in the file, nor
// the file with fewer than the threshold of shares, opens the root key.
//
// File format (JSON, "keyledger-root-seal/v1"):
//
//	{"format":"keyledger-root-seal/v1", "mode":"passphrase"|"shamir",
//	 "argon2id":{"salt":…,"time":…,"memoryKiB":…,"threads":…},   passphrase
//	 "shamir":{"shares":N,"threshold":M},                          shamir
//	 "pkcs11":{"module":…,"token":…,"keyPrefix":…},                pkcs11
//	 "current":V, "versions":[{"version":V,"wrapped":…,"fingerprint":…}]}
//
// wrapped is aead.Seal(KEK, "keyledger/v1 sealed root key", root key,
// aad = "version N"). The AEAD is the commitment that refuses a wrong
// passphrase or a wrong share: opening fails as a whole, saying nothing of
// which share was wrong. In mode pkcs11 the versions are non-extractable
// keys on the token (a version names its key's label) and the token's PIN
// opens them; the file holds no key at all. A version leaves the file when
// rotation retires it.
//
// Functions hold no global state. A File is not safe for concurrent use; a
// Keeper is.
package seal

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"

	"github.com/keyledger/keyledger/crypto/aead"
	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/crypto/secret"
	"github.com/keyledger/keyledger/crypto/shamir"
)

// Format names the file format.
const Format = "keyledger-root-seal/v1"

// Modes.
const (
	ModePassphrase = "passphrase"
	ModeShamir     = "shamir"
	ModePKCS11     = "pkcs11"
)

const (
	kekSize   = 32
	wrapLabel = "keyledger/v1 sealed root key"
	// SharePrefix begins every printed share.
	SharePrefix = "klshare1-"
)

// ErrOpen is the one answer to a wrong passphrase or wrong shares.
var ErrOpen = errors.New("seal: the passphrase or shares do not open the root key")

// Argon2 are the KDF parameters, stored in the file.
type Argon2 struct {
	Salt      []byte `json:"salt"`
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memoryKiB"`
	Threads   uint8  `json:"threads"`
}

// DefaultArgon2 follows RFC 9106's second recommended option (64 MiB, 3
// passes, 4 lanes).
func DefaultArgon2() Argon2 { return Argon2{Time: 3, MemoryKiB: 64 << 10, Threads: 4} }

// Shamir says how many shares exist and how many open the seal.
type Shamir struct {
	Shares    int `json:"shares"`
	Threshold int `json:"threshold"`
}

// PKCS11 names the token that holds the root key versions (mode pkcs11)
// and the label prefix of their keys there.
type PKCS11 struct {
	Module    string `json:"module"`
	Token     string `json:"token"`
	KeyPrefix string `json:"keyPrefix"`
}

// Version is one sealed root key version: wrapped under the KEK, or (mode
// pkcs11) the label of its key on the token.
type Version struct {
	Version     uint32 `json:"version"`
	Wrapped     []byte `json:"wrapped,omitempty"`
	Label       string `json:"label,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
}

// File is a seal file.
type File struct {
	Format   string    `json:"format"`
	Mode     string    `json:"mode"`
	Argon2   *Argon2   `json:"argon2id,omitempty"`
	Shamir   *Shamir   `json:"shamir,omitempty"`
	PKCS11   *PKCS11   `json:"pkcs11,omitempty"`
	Current  uint32    `json:"current"`
	Versions []Version `json:"versions"`
}

// NewPassphrase seals root (as version 1) under a passphrase.
func NewPassphrase(root rootkey.Key, passphrase []byte, p Argon2) (*File, error) {
	if len(passphrase) == 0 {
		return nil, errors.New("seal: empty passphrase")
	}
	p.Salt = make([]byte, 16)
	rand.Read(p.Salt)
	f := &File{Format: Format, Mode: ModePassphrase, Argon2: &p}
	kek := f.PassphraseKEK(passphrase)
	defer kek.Clear()
	f.add(kek, 1, root)
	return f, nil
}

// NewShamir seals root (as version 1) under a random KEK split into n
// shares, any threshold of which open it. The shares are returned once,
// encoded for printing.
func NewShamir(root rootkey.Key, n, threshold int) (*File, []string, error) {
	kek := secret.Random(kekSize)
	defer kek.Clear()
	parts, err := shamir.Split(kek.Expose(), n, threshold)
	if err != nil {
		return nil, nil, err
	}
	shares := make([]string, len(parts))
	for i, p := range parts {
		shares[i] = SharePrefix + base64.RawURLEncoding.EncodeToString(p)
		clear(p)
	}
	f := &File{Format: Format, Mode: ModeShamir, Shamir: &Shamir{Shares: n, Threshold: threshold}}
	f.add(kek, 1, root)
	return f, shares, nil
}

// PassphraseKEK derives the KEK of a passphrase file.
func (f *File) PassphraseKEK(passphrase []byte) secret.Bytes {
	p := f.Argon2
	k := argon2.IDKey(passphrase, p.Salt, p.Time, p.MemoryKiB, p.Threads, kekSize)
	defer clear(k)
	return secret.New(k)
}

// ParseShare decodes a printed share.
func ParseShare(s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(strings.TrimSpace(s), SharePrefix))
	if err != nil || !strings.HasPrefix(strings.TrimSpace(s), SharePrefix) || len(b) != 1+kekSize {
		return nil, errors.New("seal: not a keyledger unseal share")
	}
	return b, nil
}

// CombineShares rebuilds a KEK from decoded shares.
func CombineShares(shares [][]byte) (secret.Bytes, error) {
	k, err := shamir.Combine(shares)
	if err != nil {
		return secret.Bytes{}, ErrOpen
	}
	defer clear(k)
	return secret.New(k), nil
}

func versionAAD(v uint32) []byte { return []byte("version " + strconv.FormatUint(uint64(v), 10)) }

func (f *File) add(kek secret.Bytes, v uint32, root rootkey.Key) {
	f.Versions = append(f.Versions, Version{Version: v, Fingerprint: root.Fingerprint(),
		Wrapped: aead.Seal(nil, kek, wrapLabel, root.Bytes().Expose(), versionAAD(v))})
	f.Current = v
}

// Open returns every root key version the file holds, or ErrOpen.
func (f *File) Open(kek secret.Bytes) (map[uint32]rootkey.Key, error) {
	out := map[uint32]rootkey.Key{}
	for _, v := range f.Versions {
		b, err := aead.Open(kek, wrapLabel, v.Wrapped, versionAAD(v.Version))
		if err != nil {
			return nil, ErrOpen
		}
		k, err := rootkey.New(b)
		clear(b)
		if err != nil {
			return nil, ErrOpen
		}
		out[v.Version] = k
	}
	if _, ok := out[f.Current]; !ok {
		return nil, ErrOpen
	}
	return out, nil
}

// Load reads and checks a seal file.
func Load(path string) (*File, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f File
	if err := json.Unmarshal(raw, &f); err != nil || f.Format != Format {
		return nil, fmt.Errorf("seal: %s is not a %s file", path, Format)
	}
	switch {
	case f.Mode == ModePassphrase && f.Argon2 != nil && len(f.Argon2.Salt) >= 16 && f.Argon2.Time > 0 && f.Argon2.Threads > 0:
	case f.Mode == ModeShamir && f.Shamir != nil && f.Shamir.Threshold >= 2 && f.Shamir.Threshold <= f.Shamir.Shares:
	case f.Mode == ModePKCS11 && f.PKCS11 != nil && f.PKCS11.Module != "" && f.PKCS11.Token != "" && f.PKCS11.KeyPrefix != "":
	default:
		return nil, fmt.Errorf("seal: %s: unknown or incomplete mode %q", path, f.Mode)
	}
	if len(f.Versions) == 0 {
		return nil, fmt.Errorf("seal: %s holds no root key", path)
	}
	return &f, nil
}

// Save writes f to path atomically (temporary file, fsync, rename, fsync
// of the directory), mode 0600.
func (f *File) Save(path string) error {
	raw, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".seal-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(raw, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
