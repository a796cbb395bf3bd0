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
//	 "shamir":{"shares":N,"threshold":M,"checks":[…]},            shamir
//	 "pkcs11":{"module":…,"token":…,"keyPrefix":…},                pkcs11
//	 "current":V, "versions":[{"version":V,"wrapped":…,"fingerprint":…}]}
//
// wrapped is aead.Seal(KEK, "keyledger/v1 sealed root key", root key,
// aad = "version N"). The AEAD is the commitment that refuses a wrong
// passphrase or a wrong share: opening fails as a whole, saying nothing of
// which share was wrong. A Shamir file also holds one check value per
// share, checks[x-1] = SHA-256("keyledger/v1 unseal share check" || share
// x), so that a share that is not one of the file's is refused on its own
// and the right ones submitted before it are kept. A check value gives
// nothing away: a share's 32 y bytes are uniformly random to anyone
// holding fewer than the threshold of the others, so the hash is a
// preimage search over 2^256 values. Files from before check values
// (no "checks") are given them at their first unseal: the threshold of
// right shares determines every share. In mode pkcs11 the versions are non-extractable
// keys on the token (a version names its key's label) and the token's PIN
// opens them; the file holds no key at all. A version leaves the file when
// rotation retires it.
//
// Functions hold no global state. A File is not safe for concurrent use; a
// Keeper is.
package seal

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/keyledger/keyledger/crypto/aead"
	"github.com/keyledger/keyledger/crypto/durable"
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

// ErrShare refuses one share that is not one of the seal's (its check
// value differs); the shares submitted before it are kept.
var ErrShare = errors.New("seal: the share is not one of this seal's shares")

// shareCheckLabel separates share check values from any other hash.
const shareCheckLabel = "keyledger/v1 unseal share check"

// shareCheck is the check value of a decoded share (x and its y bytes).
func shareCheck(share []byte) []byte {
	h := sha256.New()
	h.Write([]byte(shareCheckLabel))
	h.Write(share)
	return h.Sum(nil)
}

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

// MinPassphraseLength is the fewest characters (Unicode code points) a new
// passphrase may have.
const MinPassphraseLength = 12

// ErrWeak refuses a passphrase or Argon2id parameters below the minimum.
var ErrWeak = errors.New("seal: weaker than the minimum")

// minArgon2 are the least Argon2id costs accepted: OWASP's Password Storage
// Cheat Sheet lists these as equivalent minimum configurations (memory,
// passes, one lane). Parameters at least as costly as one of them, in both
// memory and passes, are accepted.
var minArgon2 = []struct{ memoryKiB, time uint32 }{
	{46 << 10, 1}, {19 << 10, 2}, {12 << 10, 3}, {9 << 10, 4}, {7 << 10, 5},
}

// CheckStrength refuses Argon2id parameters below OWASP's minimum
// (19 MiB and 2 passes, or an equivalent trade-off such as 46 MiB and 1).
func (p Argon2) CheckStrength() error {
	for _, m := range minArgon2 {
		if p.MemoryKiB >= m.memoryKiB && p.Time >= m.time && p.Threads >= 1 {
			return nil
		}
	}
	return fmt.Errorf("%w: Argon2id with %d KiB and %d passes is below OWASP's minimum (19 MiB and 2 passes, or 46 MiB and 1)",
		ErrWeak, p.MemoryKiB, p.Time)
}

// CheckPassphrase refuses a passphrase shorter than MinPassphraseLength.
func CheckPassphrase(passphrase []byte) error {
	if n := utf8.RuneCount(passphrase); n < MinPassphraseLength {
		return fmt.Errorf("%w: the passphrase has %d characters; at least %d are needed", ErrWeak, n, MinPassphraseLength)
	}
	return nil
}

// Shamir says how many shares exist and how many open the seal, with each
// share's check value (Checks[x-1] for the share at x; none in files from
// before check values).
type Shamir struct {
	Shares    int      `json:"shares"`
	Threshold int      `json:"threshold"`
	Checks    [][]byte `json:"checks,omitempty"`
}

// checkShare refuses a decoded share whose check value is not the file's.
// A file without check values cannot tell, and takes every share.
func (s *Shamir) checkShare(b []byte) error {
	if len(s.Checks) == 0 {
		return nil
	}
	x := int(b[0])
	if x < 1 || x > len(s.Checks) || subtle.ConstantTimeCompare(shareCheck(b), s.Checks[x-1]) != 1 {
		return ErrShare
	}
	return nil
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

// NewPassphrase seals root (as version 1) under a passphrase of at least
// MinPassphraseLength characters, with Argon2id parameters at least
// OWASP's minimum (ErrWeak otherwise).
func NewPassphrase(root rootkey.Key, passphrase []byte, p Argon2) (*File, error) {
	if err := CheckPassphrase(passphrase); err != nil {
		return nil, err
	}
	if err := p.CheckStrength(); err != nil {
		return nil, err
	}
	return UnsafeNewPassphrase(root, passphrase, p)
}

// UnsafeNewPassphrase is NewPassphrase without the minimums: for tests
// that cannot afford the memory and time, and `root init
// --unsafe-weak-passphrase`. A seal it makes can be opened by guessing.
func UnsafeNewPassphrase(root rootkey.Key, passphrase []byte, p Argon2) (*File, error) {
	if len(passphrase) == 0 {
		return nil, errors.New("seal: empty passphrase")
	}
	if p.Time == 0 || p.Threads == 0 {
		return nil, errors.New("seal: Argon2id needs at least one pass and one lane")
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
	checks := make([][]byte, len(parts))
	for i, p := range parts {
		shares[i] = SharePrefix + base64.RawURLEncoding.EncodeToString(p)
		checks[i] = shareCheck(p)
		clear(p)
	}
	f := &File{Format: Format, Mode: ModeShamir, Shamir: &Shamir{Shares: n, Threshold: threshold, Checks: checks}}
	f.add(kek, 1, root)
	return f, shares, nil
}

// CheckStrength refuses a passphrase file whose Argon2id parameters are
// below the minimum (see Argon2.CheckStrength); other modes pass.
func (f *File) CheckStrength() error {
	if f.Mode != ModePassphrase || f.Argon2 == nil {
		return nil
	}
	return f.Argon2.CheckStrength()
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
	case f.Mode == ModeShamir && f.Shamir != nil && f.Shamir.Threshold >= 2 && f.Shamir.Threshold <= f.Shamir.Shares &&
		(len(f.Shamir.Checks) == 0 || len(f.Shamir.Checks) == f.Shamir.Shares):
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
	return durable.WriteFile(path, append(raw, '\n'), 0o600)
}
