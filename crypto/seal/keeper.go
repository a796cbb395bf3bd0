package seal

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/keyledger/keyledger/crypto/aead"
	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/crypto/secret"
	"github.com/keyledger/keyledger/crypto/shamir"
)

// Keeper opens a seal file into a rootkey.Ring and keeps it: it collects
// unseal shares, and after unsealing holds the KEK in memory so rotation
// can seal a new root key version into the file. Safe for concurrent use.
type Keeper struct {
	path   string
	ring   *rootkey.Ring
	mode   string  // fixed for the file's life, as are:
	shamir *Shamir // threshold (mode shamir)
	pkcs11 *PKCS11 // token (mode pkcs11)

	mu     sync.Mutex
	file   *File
	open   bool
	kek    secret.Bytes // set once unsealed (passphrase, shamir)
	hsm    HSM          // set once unsealed (pkcs11)
	shares [][]byte     // submitted, not yet enough
}

// Progress is where unsealing stands.
type Progress struct {
	Sealed    bool `json:"sealed"`
	Threshold int  `json:"threshold,omitempty"`
	Submitted int  `json:"progress"`
}

// ErrUnsealed answers a share sent after the seal is open.
var ErrUnsealed = errors.New("seal: already unsealed")

// NewKeeper loads the seal file at path; ring stays sealed until Unseal.
func NewKeeper(path string, ring *rootkey.Ring) (*Keeper, error) {
	f, err := Load(path)
	if err != nil {
		return nil, err
	}
	return &Keeper{path: path, ring: ring, file: f, mode: f.Mode, shamir: f.Shamir, pkcs11: f.PKCS11}, nil
}

// Mode is the seal file's mode.
func (k *Keeper) Mode() string { return k.mode }

// Progress reports where unsealing stands.
func (k *Keeper) Progress() Progress {
	k.mu.Lock()
	defer k.mu.Unlock()
	p := Progress{Sealed: !k.open, Submitted: len(k.shares)}
	if k.shamir != nil {
		p.Threshold = k.shamir.Threshold
	}
	return p
}

// UnsealPassphrase opens the ring with a passphrase, or returns ErrOpen.
func (k *Keeper) UnsealPassphrase(passphrase []byte) error {
	if k.mode != ModePassphrase {
		return fmt.Errorf("seal: the root key is sealed with %s, not a passphrase", k.mode)
	}
	k.mu.Lock()
	f := k.file
	k.mu.Unlock()
	kek := f.PassphraseKEK(passphrase) // Argon2id, slow: outside the lock
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.openLocked(kek)
}

// SubmitShare adds one share. A share whose check value is not the
// file's is refused alone (ErrShare) and the shares before it are kept.
// When the threshold is met it tries them: the ring opens, or ErrOpen says
// the shares (all of them, forgotten now) do not open it, without saying
// which was wrong — which only a file without check values can come to. A
// share repeated is counted once; a different share with the same index is
// a wrong share. Opening a file without check values gives it them.
func (k *Keeper) SubmitShare(share string) (Progress, error) {
	if k.mode != ModeShamir {
		return Progress{}, fmt.Errorf("seal: the root key is sealed with %s, not shares", k.mode)
	}
	b, err := ParseShare(share)
	if err != nil {
		return k.Progress(), err
	}
	k.mu.Lock()
	if k.open {
		k.mu.Unlock()
		return k.Progress(), ErrUnsealed
	}
	if err := k.shamir.checkShare(b); err != nil {
		clear(b)
		k.mu.Unlock()
		return k.Progress(), err
	}
	dup, conflict := false, false
	for _, s := range k.shares {
		if s[0] == b[0] {
			dup = true
			conflict = conflict || subtle.ConstantTimeCompare(s, b) != 1
		}
	}
	if !dup {
		k.shares = append(k.shares, b)
	}
	if len(k.shares) < k.shamir.Threshold && !conflict {
		k.mu.Unlock()
		return k.Progress(), nil
	}
	// Two different shares at one x: one of them is wrong; refused like
	// any wrong share, without saying which.
	kek, err := CombineShares(k.shares)
	if conflict && err == nil {
		kek.Clear()
		err = ErrOpen
	}
	if err == nil {
		err = k.openLocked(kek)
	}
	if err == nil && len(k.shamir.Checks) == 0 {
		k.addChecksLocked(k.shares)
	}
	for _, s := range k.shares {
		clear(s)
	}
	k.shares = nil
	k.mu.Unlock()
	return k.Progress(), err
}

// addChecksLocked gives a file from before check values one per share,
// computed from the shares that just opened it (they determine every
// share), and saves it. Best effort: a file that cannot be written keeps
// working without them, and the next unseal tries again.
func (k *Keeper) addChecksLocked(shares [][]byte) {
	checks := make([][]byte, k.shamir.Shares)
	for x := range checks {
		sh, err := shamir.ShareAt(shares, byte(x+1))
		if err != nil {
			return
		}
		checks[x] = shareCheck(sh)
		clear(sh)
	}
	sh := *k.shamir
	sh.Checks = checks
	next := *k.file
	next.Shamir = &sh
	if next.Save(k.path) != nil {
		return
	}
	k.file, k.shamir = &next, &sh
}

func (k *Keeper) openLocked(kek secret.Bytes) error {
	keys, err := k.file.Open(kek)
	if err != nil {
		kek.Clear()
		return err
	}
	ws := map[uint32]rootkey.Wrapper{}
	for v, key := range keys {
		ws[v] = key
	}
	k.kek, k.open = kek, true
	k.ring.Install(ws, k.file.Current)
	return nil
}

// UnsealHSM opens the ring with the root key versions on a logged-in
// token (the PIN opened it).
func (k *Keeper) UnsealHSM(h HSM) error {
	if k.mode != ModePKCS11 {
		return fmt.Errorf("seal: the root key is sealed with %s, not an HSM", k.mode)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	ws, err := k.file.openHSM(h)
	if err != nil {
		return err
	}
	k.hsm, k.open = h, true
	k.ring.Install(ws, k.file.Current)
	return nil
}

// CheckStrength refuses a passphrase seal whose Argon2id parameters are
// below the minimum (File.CheckStrength).
func (k *Keeper) CheckStrength() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.file.CheckStrength()
}

// PKCS11 names the token of a pkcs11 seal (nil otherwise).
func (k *Keeper) PKCS11() *PKCS11 { return k.pkcs11 }

// Rotate seals a new root key version into the file (atomically) and
// makes it current. It returns the old and new current versions.
func (k *Keeper) Rotate() (from, to uint32, err error) { return k.RotatePublished(nil) }

// RotatePublished is Rotate that first hands the file with the new
// version (sealed, as Export gives it) to publish, when not nil: if publish
// fails, nothing changes (a key made on an HSM for it is destroyed again)
// and its error is returned. Instances sharing a seal publish to one place
// conditionally, so two of them cannot both make the next version.
func (k *Keeper) RotatePublished(publish func(sealed []byte) error) (from, to uint32, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.open {
		return 0, 0, rootkey.ErrSealed
	}
	from = k.file.Current
	for _, v := range k.file.Versions {
		to = max(to, v.Version)
	}
	to++
	next := *k.file
	next.Versions = append([]Version(nil), k.file.Versions...)
	var w rootkey.Wrapper
	if k.hsm != nil {
		label := next.label(to)
		var err error
		if w, err = k.hsm.Generate(label); err != nil {
			return 0, 0, err
		}
		next.Versions = append(next.Versions, Version{Version: to, Label: label})
		next.Current = to
		if publish != nil {
			if err := publishFile(&next, publish); err != nil {
				_ = k.hsm.Destroy(label)
				return 0, 0, err
			}
		}
	} else {
		key := rootkey.Generate()
		next.add(k.kek, to, key)
		w = key
		if publish != nil {
			if err := publishFile(&next, publish); err != nil {
				return 0, 0, err
			}
		}
	}
	if err := next.Save(k.path); err != nil {
		return 0, 0, err
	}
	k.file = &next
	k.ring.Add(to, w)
	return from, to, nil
}

func publishFile(f *File, publish func([]byte) error) error {
	raw, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return publish(raw)
}

// Retire removes version v (not the current one) from the file and the
// ring: what it wrapped can no longer be unwrapped by anyone.
func (k *Keeper) Retire(v uint32) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if v == k.file.Current {
		return errors.New("seal: cannot retire the current root key version")
	}
	next := *k.file
	next.Versions = nil
	label := ""
	for _, ver := range k.file.Versions {
		if ver.Version != v {
			next.Versions = append(next.Versions, ver)
		} else {
			label = ver.Label
		}
	}
	if err := next.Save(k.path); err != nil {
		return err
	}
	k.file = &next
	k.ring.Retire(v)
	if k.hsm != nil && label != "" {
		return k.hsm.Destroy(label) // after the file: a crash leaves an unused key, never a missing one
	}
	return nil
}

// Versions lists the versions the file holds, and the current one.
func (k *Keeper) Versions() (all []uint32, current uint32) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, v := range k.file.Versions {
		all = append(all, v.Version)
	}
	return all, k.file.Current
}

// Export is the seal file as this keeper holds it now (every version,
// sealed): what another instance sharing the seal follows (Follow).
func (k *Keeper) Export() ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return json.Marshal(k.file)
}

// ErrOtherSeal refuses to follow a copy of a different seal.
var ErrOtherSeal = errors.New("seal: the copy to follow is of another seal")

// Follow takes the root key versions of another instance's copy of this
// seal (Export) after it rotated or retired a version: versions this
// keeper lacks are opened under its KEK (or found on its token) — only a
// holder of the KEK can have sealed them — versions the copy no longer
// holds are dropped from the file and the ring, and the copy's current
// version becomes current. The file is saved. It refuses a copy of another
// seal (mode, KDF salt, shares or token differ) or one whose current
// version is older than this keeper's. changed is false when there was
// nothing to take.
func (k *Keeper) Follow(raw []byte) (changed bool, err error) {
	var other File
	if err := json.Unmarshal(raw, &other); err != nil || other.Format != Format {
		return false, fmt.Errorf("seal: the copy to follow is not a %s file", Format)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.open {
		return false, rootkey.ErrSealed
	}
	if !sameSeal(k.file, &other) {
		return false, ErrOtherSeal
	}
	if other.Current < k.file.Current {
		return false, fmt.Errorf("seal: the copy to follow is older (current version %d, here %d)", other.Current, k.file.Current)
	}
	have := map[uint32]bool{}
	for _, v := range k.file.Versions {
		have[v.Version] = true
	}
	ws := map[uint32]rootkey.Wrapper{}
	for _, v := range other.Versions {
		changed = changed || !have[v.Version]
		if k.hsm != nil {
			if ws[v.Version], err = k.hsm.Key(v.Label); err != nil {
				return false, err
			}
			continue
		}
		b, err := aead.Open(k.kek, wrapLabel, v.Wrapped, versionAAD(v.Version))
		if err != nil {
			return false, ErrOpen
		}
		key, err := rootkey.New(b)
		clear(b)
		if err != nil || (v.Fingerprint != "" && key.Fingerprint() != v.Fingerprint) {
			return false, ErrOpen
		}
		ws[v.Version] = key
	}
	if ws[other.Current] == nil {
		return false, ErrOpen
	}
	changed = changed || len(other.Versions) != len(k.file.Versions) || other.Current != k.file.Current
	if !changed {
		return false, nil
	}
	if err := other.Save(k.path); err != nil {
		return false, err
	}
	k.file = &other
	k.ring.Install(ws, other.Current)
	return true, nil
}

// sameSeal reports whether a and b are copies of one seal: the same mode
// and the same KEK derivation, shares or token.
func sameSeal(a, b *File) bool {
	if a.Mode != b.Mode {
		return false
	}
	switch a.Mode {
	case ModePassphrase:
		return a.Argon2 != nil && b.Argon2 != nil && bytes.Equal(a.Argon2.Salt, b.Argon2.Salt) &&
			a.Argon2.Time == b.Argon2.Time && a.Argon2.MemoryKiB == b.Argon2.MemoryKiB && a.Argon2.Threads == b.Argon2.Threads
	case ModeShamir:
		// Check values may be added to an older file after its first
		// unseal: copies of one seal can differ in them.
		return a.Shamir != nil && b.Shamir != nil && a.Shamir.Shares == b.Shamir.Shares && a.Shamir.Threshold == b.Shamir.Threshold
	case ModePKCS11:
		return a.PKCS11 != nil && b.PKCS11 != nil && *a.PKCS11 == *b.PKCS11
	}
	return false
}
