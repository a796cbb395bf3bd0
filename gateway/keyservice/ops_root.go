package keyservice

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/keyledger/keyledger/crypto/seal"
	"github.com/keyledger/keyledger/ledger/event"
)

// Unsealer is the seal that opens the root key (a *seal.Keeper).
type Unsealer interface {
	Mode() string
	Progress() seal.Progress
	SubmitShare(share string) (seal.Progress, error)
	Versions() (all []uint32, current uint32)
}

// Unseal takes unseal shares from callers allowed keyledger:Unseal and
// records in the ledger each unseal and each failed attempt, never a share.
// Safe for concurrent use.
type Unseal struct {
	svc    *Service
	seal   Unsealer
	opened func() // called once, after the RootUnsealed event (e.g. resume a rotation)

	mu         sync.Mutex
	submitters []string // principals whose shares are pending
}

// NewUnseal serves unsealing of u; opened runs once the root key opens.
func (s *Service) NewUnseal(u Unsealer, opened func()) *Unseal {
	if opened == nil {
		opened = func() {}
	}
	return &Unseal{svc: s, seal: u, opened: opened}
}

// authorizeOperator decides a service-wide operation (unsealing, root key
// rotation): only principals of the operator account may, and only as their
// identity policies allow. A keyledger:* policy in any other account is
// not enough: those operations act on every account's keys.
func (s *Service) authorizeOperator(c Caller, action string) error {
	if s.operator == "" || c.Account != s.operator {
		return accessDenied(c, action, "*", "because "+action+" is reserved to principals of the operator account",
			"not the operator account")
	}
	return s.authorizeIdentity(c, action, "*")
}

// Progress reports where unsealing stands (for callers allowed
// keyledger:Unseal).
func (u *Unseal) Progress(c Caller) (seal.Progress, error) {
	if err := u.svc.authorizeOperator(c, "keyledger:Unseal"); err != nil {
		return seal.Progress{}, err
	}
	return u.seal.Progress(), nil
}

// SubmitShare adds one caller's share. A share that is not one of the
// seal's (its check value differs) is refused alone (ValidationException)
// and the shares before it are kept. A seal file without check values
// cannot tell a wrong share from right ones: once the threshold is reached
// the shares open the root key together or are all refused. Each refusal
// is recorded as a failed attempt.
func (u *Unseal) SubmitShare(ctx context.Context, c Caller, share string) (seal.Progress, error) {
	ev := u.svc.newEvent(c, "UnsealRoot")
	if err := u.svc.authorizeOperator(c, "keyledger:Unseal"); err != nil {
		return seal.Progress{}, u.svc.refuse(ctx, ev, err)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.seal.Progress().Sealed {
		return u.seal.Progress(), errorf(CodeValidation, "The root key is already unsealed.")
	}
	p, err := u.seal.SubmitShare(share)
	switch {
	case errors.Is(err, seal.ErrOpen):
		who := u.take(c.PrincipalARN)
		ev.Body = &event.RootUnsealFailed{Mode: u.seal.Mode(), Attempts: 1, Submitters: who}
		if rerr := u.svc.record(ctx, ev); rerr != nil {
			return p, rerr
		}
		return p, errorf(CodeValidation, "The submitted shares do not open the root key; unsealing starts over with new shares.")
	case errors.Is(err, seal.ErrShare):
		ev.Body = &event.RootUnsealFailed{Mode: u.seal.Mode(), Attempts: 1, Submitters: []string{c.PrincipalARN}}
		if rerr := u.svc.record(ctx, ev); rerr != nil {
			return p, rerr
		}
		return p, errorf(CodeValidation, "The share is not one of this root key's unseal shares; the %d share(s) submitted before it are kept.", p.Submitted)
	case err != nil:
		return p, errorf(CodeValidation, "The share is not a keyledger unseal share.")
	case p.Sealed:
		if !slices.Contains(u.submitters, c.PrincipalARN) {
			u.submitters = append(u.submitters, c.PrincipalARN)
		}
		return p, nil
	}
	_, current := u.seal.Versions()
	ev.Body = &event.RootUnsealed{Mode: u.seal.Mode(), CurrentVersion: uint64(current), Submitters: u.take(c.PrincipalARN)}
	if err := u.svc.record(ctx, ev); err != nil {
		return p, err
	}
	u.svc.log.Info("root key unsealed", "mode", u.seal.Mode(), "root_version", current)
	go u.opened()
	return p, nil
}

// take returns and forgets the pending submitters, with last among them.
func (u *Unseal) take(last string) []string {
	who := u.submitters
	if !slices.Contains(who, last) {
		who = append(who, last)
	}
	u.submitters = nil
	slices.Sort(who)
	return who
}

// RecordUnsealed records the root key opened at start (passphrase, HSM
// PIN), after failed attempts if there were any.
func (s *Service) RecordUnsealed(ctx context.Context, mode string, current uint32, failedBefore int) error {
	if failedBefore > 0 {
		if err := s.RecordUnsealFailed(ctx, mode, failedBefore); err != nil {
			return err
		}
	}
	return s.record(ctx, &event.Event{Time: s.clock.Now(), Operation: "UnsealRoot", Region: s.region,
		Body: &event.RootUnsealed{Mode: mode, CurrentVersion: uint64(current)}})
}

// RecordUnsealFailed records failed attempts to open the root key at start.
func (s *Service) RecordUnsealFailed(ctx context.Context, mode string, attempts int) error {
	return s.record(ctx, &event.Event{Time: s.clock.Now(), Operation: "UnsealRoot", Region: s.region,
		Body: &event.RootUnsealFailed{Mode: mode, Attempts: uint64(attempts)}})
}

// RecordSealed records the root key leaving memory at shutdown.
func (s *Service) RecordSealed(ctx context.Context, mode string) error {
	return s.record(ctx, &event.Event{Time: s.clock.Now(), Operation: "SealRoot", Region: s.region,
		Body: &event.RootSealed{Mode: mode}})
}
