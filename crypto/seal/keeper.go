package seal

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"

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
func (k *Keeper) Rotate() (from, to uint32, err error) {
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
	} else {
		key := rootkey.Generate()
		next.add(k.kek, to, key)
		w = key
	}
	if err := next.Save(k.path); err != nil {
		return 0, 0, err
	}
	k.file = &next
	k.ring.Add(to, w)
	return from, to, nil
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
