package keyservice

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/material"
	"github.com/keyledger/keyledger/projections/keystate"
)

// RootKeeper keeps the sealed root key versions (a *seal.Keeper).
type RootKeeper interface {
	Rotate() (from, to uint32, err error)
	Retire(v uint32) error
	Versions() (all []uint32, current uint32)
}

// RewrapStore is the material store as rotation uses it (a
// *material.Store).
type RewrapStore interface {
	GetStored(ctx context.Context, id string) (material.Stored, error)
	Rewrap(ctx context.Context, id string, old material.Stored, wrapped []byte) error
	IDs(ctx context.Context) ([]string, error)
}

// RotationStatus is where a root key rotation stands.
type RotationStatus struct {
	State     string   `json:"state"` // idle, rewrapping, retiring, failed
	From      uint32   `json:"fromVersion,omitempty"`
	To        uint32   `json:"toVersion,omitempty"`
	Total     int      `json:"materials"`
	Rewrapped int      `json:"rewrapped"`
	Current   int      `json:"underCurrentVersion"`
	Versions  []uint32 `json:"rootVersions"`
	Error     string   `json:"error,omitempty"`
}

// RootRotation rotates the root key online: a new version becomes current
// at once (RootRotationStarted), every material under an older version is
// rewrapped in the background (MaterialRewrapped: event first, then the
// store, so a crash in between leaves bytes the ledger still accepts), and
// an old version is retired (RootVersionRetired) only when no committed
// material is under it. The work is derived from what is stored, so it
// resumes after a crash: Resume at start-up finishes it. Safe for
// concurrent use; one rotation runs at a time.
type RootRotation struct {
	svc    *Service
	keeper RootKeeper
	store  RewrapStore
	// Grace is how long stored material under an old version that the
	// ledger does not (yet) know may delay retirement: a request between
	// storing new material and committing it. Past it, such material is an
	// orphan nothing can refer to (Reclaim removes it).
	Grace time.Duration
	base  context.Context // bounds the background work

	mu      sync.Mutex
	running bool
	status  RotationStatus
}

// NewRootRotation rotates the service's root key, kept by keeper, rewrapping
// the material in store; ctx bounds the background work (the instance's
// lifetime).
func (s *Service) NewRootRotation(ctx context.Context, keeper RootKeeper, store RewrapStore) *RootRotation {
	all, _ := keeper.Versions()
	return &RootRotation{svc: s, keeper: keeper, store: store, Grace: time.Minute, base: ctx,
		status: RotationStatus{State: "idle", Versions: all}}
}

// Status reports progress (for operator-account callers allowed
// keyledger:RotateRootKey).
func (r *RootRotation) Status(c Caller) (RotationStatus, error) {
	if err := r.svc.authorizeOperator(c, "keyledger:RotateRootKey"); err != nil {
		return RotationStatus{}, err
	}
	return r.snapshot(), nil
}

func (r *RootRotation) snapshot() RotationStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.status
	st.Versions, _ = r.keeper.Versions()
	return st
}

// ErrRotationRunning refuses a rotation while one is unfinished.
var ErrRotationRunning = errors.New("a root key rotation is still rewrapping; wait for it to finish")

// Start makes a new root key version current, records it, and rewraps in
// the background.
func (r *RootRotation) Start(ctx context.Context, c Caller) (RotationStatus, error) {
	ev := r.svc.newEvent(c, "RotateRootKey")
	if err := r.svc.authorizeOperator(c, "keyledger:RotateRootKey"); err != nil {
		return RotationStatus{}, r.svc.refuse(ctx, ev, err)
	}
	if r.svc.Sealed() {
		return RotationStatus{}, errorf(CodeValidation, "The root key is sealed.")
	}
	r.mu.Lock()
	if all, _ := r.keeper.Versions(); r.running || len(all) > 1 {
		r.mu.Unlock()
		return RotationStatus{}, r.svc.refuse(ctx, ev, errorf(CodeValidation, "%s", ErrRotationRunning.Error()))
	}
	from, to, err := r.keeper.Rotate()
	if err != nil {
		r.mu.Unlock()
		r.svc.log.Error("root key rotation failed", "error", err)
		return RotationStatus{}, r.svc.refuse(ctx, ev, errInternal)
	}
	r.running = true
	r.status = RotationStatus{State: "rewrapping", From: from, To: to}
	r.mu.Unlock()
	ev.Body = &event.RootRotationStarted{FromVersion: uint64(from), ToVersion: uint64(to)}
	if err := r.svc.record(ctx, ev); err != nil {
		// The new version is current and sealed in the file; Resume
		// finishes the rewrap after the ledger recovers.
		r.mu.Lock()
		r.running = false
		r.mu.Unlock()
		return RotationStatus{}, err
	}
	r.svc.log.Info("root key rotation started", "from_version", from, "to_version", to)
	go r.run(r.base)
	return r.snapshot(), nil
}

// Resume finishes a rotation a crash or restart interrupted (the seal file
// still holds older versions). Call it once the root key is unsealed.
func (r *RootRotation) Resume() {
	all, cur := r.keeper.Versions()
	if len(all) < 2 {
		return
	}
	r.mu.Lock()
	if r.running {
		r.mu.Unlock()
		return
	}
	r.running = true
	r.status = RotationStatus{State: "rewrapping", From: all[0], To: cur}
	r.mu.Unlock()
	r.svc.log.Info("resuming root key rotation", "versions", all, "current", cur)
	go r.run(r.base)
}

type storedRef struct {
	key                keystate.Key
	id, hash, previous string
}

// committed lists every material the ledger commits to, with its key.
func (r *RootRotation) committed() []storedRef {
	var out []storedRef
	for _, k := range r.svc.state.Snapshot().Keys {
		for _, m := range k.Materials {
			out = append(out, storedRef{key: k, id: m.ID, hash: m.WrappedHash, previous: m.PreviousHash})
		}
		for _, t := range k.ImportTokens {
			out = append(out, storedRef{key: k, id: t.WrappingKey.ID, hash: t.WrappingKey.WrappedHash, previous: t.PreviousWrappingHash})
		}
	}
	return out
}

func (r *RootRotation) run(ctx context.Context) {
	defer func() {
		r.mu.Lock()
		r.running = false
		r.mu.Unlock()
	}()
	firstPending := time.Time{}
	for ctx.Err() == nil {
		all, cur := r.keeper.Versions()
		if len(all) < 2 {
			r.setState("idle", "")
			return
		}
		if err := r.pass(ctx, cur); err != nil {
			r.setState("failed", err.Error())
			r.svc.log.Error("root key rotation: rewrap pass failed; will retry", "error", err)
			sleep(ctx, time.Second)
			continue
		}
		done, err := r.retire(ctx, all, cur, &firstPending)
		if err != nil {
			r.setState("failed", err.Error())
			r.svc.log.Error("root key rotation: retiring failed; will retry", "error", err)
			sleep(ctx, time.Second)
			continue
		}
		if done {
			r.setState("idle", "")
			r.svc.log.Info("root key rotation finished", "current_version", cur)
			return
		}
		// Not done: material committed meanwhile, a request between storing
		// and committing (pending), or material left alone because it does
		// not match its commitment (logged; the old version then stays).
		sleep(ctx, 100*time.Millisecond)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func (r *RootRotation) setState(state, msg string) {
	r.mu.Lock()
	r.status.State, r.status.Error = state, msg
	r.mu.Unlock()
}

// pass rewraps every committed material not under the current version.
func (r *RootRotation) pass(ctx context.Context, cur uint32) error {
	refs := r.committed()
	r.mu.Lock()
	r.status.State, r.status.Total, r.status.Current = "rewrapping", len(refs), 0
	r.mu.Unlock()
	for i, ref := range refs {
		st, err := r.store.GetStored(ctx, ref.id)
		if errors.Is(err, material.ErrNotFound) {
			continue // destroyed meanwhile
		}
		if err != nil {
			return err
		}
		if rootkey.VersionOf(st.Wrapped) == cur {
			r.bump(false)
			continue
		}
		if err := r.rewrap(ctx, ref, st); err != nil {
			return err
		}
		r.bump(true)
		if (i+1)%1000 == 0 {
			r.svc.log.Info("root key rotation progress", "done", i+1, "of", len(refs))
		}
	}
	return nil
}

func (r *RootRotation) bump(rewrapped bool) {
	r.mu.Lock()
	r.status.Current++
	if rewrapped {
		r.status.Rewrapped++
	}
	r.mu.Unlock()
}

// rewrap moves one material to the current root version: it checks the
// stored bytes against the ledger's commitment (never launder a swapped
// blob), records the new commitment, then stores the new bytes.
func (r *RootRotation) rewrap(ctx context.Context, ref storedRef, st material.Stored) error {
	h := material.Commitment(st.Wrapped)
	if h != ref.hash && (ref.previous == "" || h != ref.previous) {
		r.svc.log.Error("root key rotation: stored material does not match its ledger commitment; left alone", "material", ref.id)
		return nil
	}
	mat, err := r.svc.root.UnwrapMaterial(st.Wrapped, ref.id)
	if err != nil {
		return err
	}
	wrapped, err := r.svc.root.WrapMaterial(mat, ref.id)
	if err != nil {
		return err
	}
	ev := &event.Event{Time: r.svc.clock.Now(), Operation: "RewrapKeyMaterial", Account: ref.key.Account,
		Region: ref.key.Region, KeyID: ref.key.ID, Body: &event.MaterialRewrapped{
			Material:     event.MaterialRef{ID: ref.id, WrappedHash: material.Commitment(wrapped)},
			PreviousHash: h, RootVersion: uint64(rootkey.VersionOf(wrapped))}}
	if err := r.svc.record(ctx, ev); err != nil {
		return err
	}
	if err := r.store.Rewrap(ctx, ref.id, st, wrapped); err != nil && !errors.Is(err, material.ErrChanged) {
		return err
	}
	return nil
}

// retire retires every old version once no committed material is under
// one. It holds the service lock exclusively, so no state-changing request
// is between storing material and committing it — except those that stored
// it before waiting for the lock: stored material the ledger does not know,
// under an old version, delays retirement (pending) for up to Grace.
func (r *RootRotation) retire(ctx context.Context, all []uint32, cur uint32, firstPending *time.Time) (done bool, err error) {
	r.setState("retiring", "")
	defer r.svc.exclusive()()
	known := map[string]bool{}
	for _, ref := range r.committed() {
		known[ref.id] = true
		st, err := r.store.GetStored(ctx, ref.id)
		if errors.Is(err, material.ErrNotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		if rootkey.VersionOf(st.Wrapped) != cur {
			return false, nil // committed meanwhile: another pass
		}
	}
	ids, err := r.store.IDs(ctx)
	if err != nil {
		return false, err
	}
	for _, id := range ids {
		if known[id] {
			continue
		}
		st, err := r.store.GetStored(ctx, id)
		if err != nil || rootkey.VersionOf(st.Wrapped) == cur {
			continue
		}
		if firstPending.IsZero() {
			*firstPending = time.Now()
		}
		if time.Since(*firstPending) < r.Grace {
			return false, nil // pending
		}
		r.svc.log.Warn("root key rotation: uncommitted material under an old root version is left as an orphan", "material", id)
	}
	r.mu.Lock()
	rewrapped := r.status.Rewrapped
	r.mu.Unlock()
	for _, v := range all {
		if v == cur {
			continue
		}
		if err := r.keeper.Retire(v); err != nil {
			return false, err
		}
		if err := r.svc.record(ctx, &event.Event{Time: r.svc.clock.Now(), Operation: "RetireRootKeyVersion", Region: r.svc.region,
			Body: &event.RootVersionRetired{Version: uint64(v), Rewrapped: uint64(rewrapped)}}); err != nil {
			return false, err
		}
		r.svc.log.Info("root key version retired", "version", v)
	}
	return true, nil
}
