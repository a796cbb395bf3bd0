package keyservice

import (
	"context"
	"errors"

	"github.com/keyledger/keyledger/ledger/material"
)

// MaterialCheck is what CheckMaterials found.
type MaterialCheck struct {
	Materials  int                  // live materials checked
	Repaired   map[string][]string  // material id → parts rewritten from the other copy
	Unreadable []UnreadableMaterial // no stored copy opens
	Dropped    int                  // damaged key slots zeroed
	Skipped    bool                 // the store keeps one copy only (not a material.Store)
}

// UnreadableMaterial is a live material no copy of which can be read.
type UnreadableMaterial struct {
	KeyID, MaterialID string
	Cause             string
}

// materialChecker is a material store that keeps two copies and checks
// them (material.Store).
type materialChecker interface {
	Check(ctx context.Context, live map[string][]string) (material.Checked, error)
}

// CheckMaterials reads every live material from both stored copies against
// the ledger's commitment, repairs a damaged or missing copy from the
// other, and names each key whose material no copy opens. Materials whose
// destruction has fallen due (a deletion or an import expiry the scheduler
// is about to carry out) are left out: they may be gone already.
func (s *Service) CheckMaterials(ctx context.Context) (MaterialCheck, error) {
	c, ok := s.materials.(materialChecker)
	if !ok {
		return MaterialCheck{Skipped: true}, nil
	}
	live, owner := s.state.CheckableMaterials(s.clock.Now())
	res, err := c.Check(ctx, live)
	out := MaterialCheck{Materials: res.Materials, Repaired: res.Repaired, Dropped: res.Dropped}
	for _, u := range res.Unreadable {
		out.Unreadable = append(out.Unreadable, UnreadableMaterial{KeyID: owner[u.ID], MaterialID: u.ID, Cause: u.Error()})
	}
	return out, err
}

// commitments are the commitments the ledger accepts for a material,
// newest first: its current one and, after a root key rotation, the one
// before it.
func commitments(current, previous string) []string {
	if previous == "" {
		return []string{current}
	}
	return []string{current, previous}
}

// errMaterialUnreadable is what callers see when the key material a
// request needs is stored but no copy of it opens: a server fault that a
// retry does not mend.
var errMaterialUnreadable = &Error{Code: CodeInternal, Message: "The key material this request needs cannot be read: " +
	"every stored copy of it is damaged. It was not deleted; an operator can restore it from a backup. Nothing was changed."}

// asMaterialError keeps the cause of a material store failure callers
// branch on.
func asMaterialError(err error) *Error {
	if errors.Is(err, material.ErrUnreadable) {
		return errMaterialUnreadable
	}
	return nil
}
