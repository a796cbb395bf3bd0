package keyservice

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/material"
	"github.com/keyledger/keyledger/ledger/sealstore"
	"github.com/keyledger/keyledger/projections/keystate"
)

// RootKeeper keeps the sealed root key versions (a *seal.Keeper).
type RootKeeper interface {
	// RotatePublished makes a new version current after publish took the
	// sealed file holding it (nothing changes if publish fails).
	RotatePublished(publish func(sealed []byte) error) (from, to uint32, err error)
	Retire(v uint32) error
	Versions() (all []uint32, current uint32)
	// Export is the sealed file; Follow takes another instance's copy.
	Export() ([]byte, error)
	Follow(sealed []byte) (changed bool, err error)
}

// SealStore shares the sealed root key file between the instances of a
// deployment (a *sealstore.Store).
type SealStore interface {
	// Get returns the file and its revision (sealstore.ErrNone: none yet).
	Get(ctx context.Context) ([]byte, uint64, error)
	// Put stores it if the stored one is still at rev (0: none yet);
	// sealstore.ErrConflict otherwise.
	Put(ctx context.Context, sealed []byte, rev uint64) (uint64, error)
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

// RootRotation rotates the root key online, across every instance that
// shares the seal. Start makes a new version: it is published to the
// shared sealed file (conditionally, so two instances cannot both make
// it), made current here, and recorded (RootRotationStarted). Every
// instance follows what the ledger says: when it folds a rotation or a
// retirement (and after unsealing) it takes the shared file's versions
// (Follow), so new material is wrapped under the new version everywhere
// and nobody restarts. The rewrapping is scheduled work, done by the
// instance holding the scheduler lease (Scheduler): every material under an
// older version is rewrapped (MaterialRewrapped: event first, then the
// store, so a crash in between leaves bytes the ledger still accepts), and
// an old version is retired once no committed material is under it:
// RootVersionRetired is recorded first — only if, at its place in the
// chain, this instance still holds the scheduler and no material was
// committed since the check — then the version is destroyed here and in
// the shared file, and the other instances drop it as they follow. The
// work is derived from what is stored and what the ledger says, so it
// resumes after a crash. Safe for concurrent use.
type RootRotation struct {
	svc    *Service
	keeper RootKeeper
	store  RewrapStore
	seals  SealStore // nil: this instance alone holds the seal
	// Grace is how long stored material under an old version that the
	// ledger does not (yet) know may delay retirement: a request between
	// storing new material and committing it. Past it, such material is an
	// orphan nothing can refer to (Reclaim removes it).
	Grace time.Duration

	op      sync.Mutex // one Start, Follow or step at a time
	sealRev uint64     // revision of the shared file this keeper matches
	pending time.Time  // since when uncommitted old-version material delays retirement

	mu     sync.Mutex
	status RotationStatus
}

// NewRootRotation rotates the service's root key, kept by keeper,
// rewrapping the material in store; seals shares the sealed file with the
// deployment's other instances (nil: none). The scheduler does the
// rewrapping from now on.
func (s *Service) NewRootRotation(keeper RootKeeper, store RewrapStore, seals SealStore) *RootRotation {
	all, _ := keeper.Versions()
	r := &RootRotation{svc: s, keeper: keeper, store: store, seals: seals, Grace: time.Minute,
		status: RotationStatus{State: "idle", Versions: all}}
	s.rotation = r
	return r
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
	if len(st.Versions) > 1 && st.State == "idle" {
		st.State = "rewrapping" // by whichever instance runs the scheduler
	}
	return st
}

// ErrRotationRunning refuses a rotation while one is unfinished.
var ErrRotationRunning = errors.New("a root key rotation is still rewrapping; wait for it to finish")

// Start makes a new root key version current, everywhere, and records it;
// the scheduler rewraps.
func (r *RootRotation) Start(ctx context.Context, c Caller) (RotationStatus, error) {
	ev := r.svc.newEvent(c, "RotateRootKey")
	if err := r.svc.authorizeOperator(c, "keyledger:RotateRootKey"); err != nil {
		return RotationStatus{}, r.svc.refuse(ctx, ev, err)
	}
	if r.svc.Sealed() {
		return RotationStatus{}, errorf(CodeValidation, "The root key is sealed.")
	}
	r.op.Lock()
	defer r.op.Unlock()
	if err := r.follow(ctx); err != nil {
		r.svc.log.Error("root key rotation: cannot read the shared seal", "error", err)
		return RotationStatus{}, r.svc.refuse(ctx, ev, errInternal)
	}
	all, cur := r.keeper.Versions()
	if len(all) > 1 || uint64(cur) < r.ledgerCurrent() {
		return RotationStatus{}, r.svc.refuse(ctx, ev, errorf(CodeValidation, "%s", ErrRotationRunning.Error()))
	}
	from, to, err := r.keeper.RotatePublished(r.publish(ctx))
	if errors.Is(err, sealstore.ErrConflict) {
		return RotationStatus{}, r.svc.refuse(ctx, ev, errorf(CodeValidation, "Another instance changed the root key meanwhile; try again."))
	}
	if err != nil {
		r.svc.log.Error("root key rotation failed", "error", err)
		return RotationStatus{}, r.svc.refuse(ctx, ev, errInternal)
	}
	r.setStatus(RotationStatus{State: "rewrapping", From: from, To: to})
	ev.Body = &event.RootRotationStarted{FromVersion: uint64(from), ToVersion: uint64(to)}
	if err := r.recordStarted(ctx, ev); err != nil {
		// The new version is current and published; the scheduler (or
		// Resume) records it once the ledger takes it.
		r.svc.log.Error("root key rotation not recorded yet", "error", err)
		return RotationStatus{}, errInternal
	}
	r.svc.log.Info("root key rotation started", "from_version", from, "to_version", to)
	return r.snapshot(), nil
}

// publish stores the sealed file in the shared store, conditional on the
// revision this keeper last matched.
func (r *RootRotation) publish(ctx context.Context) func([]byte) error {
	if r.seals == nil {
		return nil
	}
	return func(sealed []byte) error {
		rev, err := r.seals.Put(ctx, sealed, r.sealRev)
		if err == nil {
			r.sealRev = rev
		}
		return err
	}
}

// ledgerCurrent is the root version the ledger says new material is
// wrapped under.
func (r *RootRotation) ledgerCurrent() uint64 { return max(1, r.svc.state.Root().Current) }

// Follow takes the root key versions of the shared sealed file, if they
// changed: an instance calls it when it folds a root key rotation or
// retirement, and after unsealing. The first instance to find no shared
// file stores its own.
func (r *RootRotation) Follow(ctx context.Context) error {
	if r.svc.Sealed() {
		return nil
	}
	r.op.Lock()
	defer r.op.Unlock()
	return r.follow(ctx)
}

func (r *RootRotation) follow(ctx context.Context) error {
	if r.seals == nil {
		return nil
	}
	sealed, rev, err := r.seals.Get(ctx)
	if errors.Is(err, sealstore.ErrNone) {
		own, err := r.keeper.Export()
		if err != nil {
			return err
		}
		rev, err = r.seals.Put(ctx, own, 0)
		if errors.Is(err, sealstore.ErrConflict) {
			return nil // another instance stored its copy first: follow it next time
		}
		if err == nil {
			r.sealRev = rev
		}
		return err
	}
	if err != nil {
		return err
	}
	changed, err := r.keeper.Follow(sealed)
	if err != nil {
		return err
	}
	r.sealRev = rev
	if changed {
		all, cur := r.keeper.Versions()
		r.svc.log.Info("root key versions taken from the shared seal", "versions", all, "current", cur)
	}
	return nil
}

// Resume takes the shared versions and records a rotation a crash (or a
// ledger outage) left unrecorded. Call it once the root key is unsealed;
// the scheduler finishes the rewrapping.
func (r *RootRotation) Resume() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r.op.Lock()
	defer r.op.Unlock()
	if err := r.follow(ctx); err != nil {
		r.svc.log.Error("root key: cannot take the shared seal's versions", "error", err)
	}
	all, cur := r.keeper.Versions()
	if len(all) > 1 {
		r.svc.log.Info("resuming root key rotation", "versions", all, "current", cur)
	}
	if err := r.recordIfAhead(ctx); err != nil {
		r.svc.log.Error("root key rotation not recorded yet; the scheduler retries", "error", err)
	}
}

// recordIfAhead records the rotation to the keeper's current version if
// the ledger does not name it yet (a crash or a refused append came
// between making the version and recording it).
func (r *RootRotation) recordIfAhead(ctx context.Context) error {
	_, cur := r.keeper.Versions()
	if uint64(cur) <= r.ledgerCurrent() {
		return nil
	}
	return r.recordStarted(ctx, &event.Event{Time: r.svc.clock.Now(), Operation: "RotateRootKey", Region: r.svc.region,
		Body: &event.RootRotationStarted{FromVersion: r.ledgerCurrent(), ToVersion: uint64(cur)}})
}

// recordStarted appends RootRotationStarted unless, at its place, the
// ledger already names that version; another instance's append in between
// is no reason to give up (the rotation is made, whatever state it saw).
func (r *RootRotation) recordStarted(ctx context.Context, ev *event.Event) error {
	to := ev.Body.(*event.RootRotationStarted).ToVersion
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		_, err = r.svc.appendIf(ctx, ev, func() error {
			if r.ledgerCurrent() >= to {
				return errNotDue // recorded meanwhile
			}
			return nil
		})
		if err == nil || errors.Is(err, errNotDue) {
			return nil
		}
		if !errors.Is(err, ledger.ErrConflict) {
			return err
		}
	}
	return err
}

// step is the scheduler's share of a rotation, under its fence: finish
// retirements the ledger recorded, rewrap, and retire.
func (r *RootRotation) step(ctx context.Context, f fence) error {
	if r.svc.Sealed() {
		return nil
	}
	r.op.Lock()
	defer r.op.Unlock()
	if _, cur := r.keeper.Versions(); uint64(cur) != r.ledgerCurrent() || r.holdsRetired() {
		if err := r.follow(ctx); err != nil {
			return err
		}
	}
	if err := r.finishRetired(ctx); err != nil {
		return err
	}
	all, cur := r.keeper.Versions()
	if len(all) < 2 {
		r.setState("idle", "")
		return nil
	}
	if uint64(cur) > r.ledgerCurrent() {
		if err := r.recordIfAhead(ctx); err != nil {
			return err
		}
	}
	if uint64(cur) != r.ledgerCurrent() {
		return nil // not taken from the shared seal yet
	}
	if err := r.pass(ctx, cur, f); err != nil {
		r.setState("failed", err.Error())
		return fmt.Errorf("root key rotation: rewrap pass: %w", err)
	}
	done, err := r.retire(ctx, all, cur, f)
	if err != nil {
		r.setState("failed", err.Error())
		return fmt.Errorf("root key rotation: retiring: %w", err)
	}
	if done {
		r.setState("idle", "")
		r.svc.log.Info("root key rotation finished", "current_version", cur)
	}
	return nil
}

// hasWork reports whether the scheduler has rotation work: versions to
// rewrap from or retire, a rotation to record, or shared versions to take.
func (r *RootRotation) hasWork() bool {
	all, cur := r.keeper.Versions()
	return len(all) > 1 || uint64(cur) != r.ledgerCurrent() || r.holdsRetired()
}

// holdsRetired reports whether the keeper still holds a version the
// ledger says is retired.
func (r *RootRotation) holdsRetired() bool {
	all, _ := r.keeper.Versions()
	for _, v := range r.svc.state.Root().Retired {
		if slices.Contains(all, uint32(v)) {
			return true
		}
	}
	return false
}

// finishRetired destroys the versions the ledger says are retired that the
// keeper (and so the shared file) still holds: a crash came between the
// event and the destruction.
func (r *RootRotation) finishRetired(ctx context.Context) error {
	all, cur := r.keeper.Versions()
	for _, v := range r.svc.state.Root().Retired {
		if uint32(v) == cur || !slices.Contains(all, uint32(v)) {
			continue
		}
		if err := r.destroyVersion(ctx, uint32(v)); err != nil {
			return err
		}
	}
	return nil
}

// destroyVersion retires v here and in the shared file.
func (r *RootRotation) destroyVersion(ctx context.Context, v uint32) error {
	if err := r.keeper.Retire(v); err != nil {
		return err
	}
	if r.seals != nil {
		sealed, err := r.keeper.Export()
		if err != nil {
			return err
		}
		if err := r.publish(ctx)(sealed); err != nil {
			return fmt.Errorf("storing the shared seal without version %d: %w", v, err)
		}
	}
	r.svc.log.Info("root key version retired", "version", v)
	return nil
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

func (r *RootRotation) setState(state, msg string) {
	r.mu.Lock()
	r.status.State, r.status.Error = state, msg
	r.mu.Unlock()
}

// setStatus replaces the status.
func (r *RootRotation) setStatus(st RotationStatus) {
	r.mu.Lock()
	r.status = st
	r.mu.Unlock()
}

// pass rewraps every committed material not under the current version.
func (r *RootRotation) pass(ctx context.Context, cur uint32, f fence) error {
	refs := r.committed()
	all, _ := r.keeper.Versions()
	r.mu.Lock()
	r.status.State, r.status.Total, r.status.Current = "rewrapping", len(refs), 0
	r.status.From, r.status.To = all[0], cur
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
		if err := r.rewrap(ctx, ref, st, f); err != nil {
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
// blob), records the new commitment — if, at its place in the chain, this
// instance still holds the scheduler and the commitment is still the one
// read — then stores the new bytes.
func (r *RootRotation) rewrap(ctx context.Context, ref storedRef, st material.Stored, f fence) error {
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
	mat.Clear()
	if err != nil {
		return err
	}
	ev := &event.Event{Time: r.svc.clock.Now(), Operation: "RewrapKeyMaterial", Account: ref.key.Account,
		Region: ref.key.Region, KeyID: ref.key.ID, Body: &event.MaterialRewrapped{
			Material:     event.MaterialRef{ID: ref.id, WrappedHash: material.Commitment(wrapped)},
			PreviousHash: h, RootVersion: uint64(rootkey.VersionOf(wrapped))}}
	ok, err := r.svc.appendDue(ctx, ev, f, func() bool { return r.commitment(ref.key.ID, ref.id) == ref.hash })
	if err != nil || !ok {
		return err
	}
	if err := r.store.Rewrap(ctx, ref.id, st, wrapped); err != nil && !errors.Is(err, material.ErrChanged) {
		return err
	}
	return nil
}

// commitment is the wrapped-bytes commitment the ledger holds for material
// id of key keyID ("" when none).
func (r *RootRotation) commitment(keyID, id string) string {
	k, ok := r.svc.state.Key(keyID)
	if !ok {
		return ""
	}
	for _, m := range k.Materials {
		if m.ID == id {
			return m.WrappedHash
		}
	}
	for _, t := range k.ImportTokens {
		if t.WrappingKey.ID == id {
			return t.WrappingKey.WrappedHash
		}
	}
	return ""
}

// liveDigest is a digest of every material the ledger commits to: equal
// digests mean no material was committed, rewrapped or destroyed between
// two reads.
func (r *RootRotation) liveDigest() [32]byte {
	refs := r.committed()
	lines := make([]string, 0, len(refs))
	for _, ref := range refs {
		lines = append(lines, ref.id+" "+ref.hash)
	}
	slices.Sort(lines)
	return sha256.Sum256([]byte(strings.Join(lines, "\n")))
}

// retire retires every old version once no committed material is under
// one. It holds the service lock exclusively, so no state-changing request
// of this instance is between storing material and committing it — except
// those that stored it before waiting for the lock, and other instances':
// stored material the ledger does not know, under an old version, delays
// retirement (pending) for up to Grace. RootVersionRetired is then
// recorded only if, at its place in the chain, nothing was committed since
// the check (and this instance still holds the scheduler); the version is
// destroyed after the event, here and in the shared file (finishRetired
// completes it after a crash).
//
// The check reads every key's materials: RootVersionRetired is a change
// fenced on every partition, so a material committed by any instance since
// the check refuses it (and the check runs again).
func (r *RootRotation) retire(ctx context.Context, all []uint32, cur uint32, f fence) (done bool, err error) {
	r.setState("retiring", "")
	return changing(ctx, r.svc, func(ctx context.Context) (bool, error) {
		touch(ctx, everyPartition)
		return r.retireOnce(ctx, all, cur, f)
	})
}

func (r *RootRotation) retireOnce(ctx context.Context, all []uint32, cur uint32, f fence) (done bool, err error) {
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
	live := r.liveDigest()
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
		if r.pending.IsZero() {
			r.pending = time.Now()
		}
		if time.Since(r.pending) < r.Grace {
			return false, nil // pending
		}
		r.svc.log.Warn("root key rotation: uncommitted material under an old root version is left as an orphan", "material", id)
	}
	r.pending = time.Time{}
	r.mu.Lock()
	rewrapped := r.status.Rewrapped
	r.mu.Unlock()
	for _, v := range all {
		if v == cur {
			continue
		}
		ev := &event.Event{Time: r.svc.clock.Now(), Operation: "RetireRootKeyVersion", Region: r.svc.region,
			Body: &event.RootVersionRetired{Version: uint64(v), Rewrapped: uint64(rewrapped)}}
		ok, err := r.svc.appendDue(ctx, ev, f, func() bool {
			return !slices.Contains(r.svc.state.Root().Retired, uint64(v)) && r.liveDigest() == live
		})
		if err != nil || !ok {
			return false, err
		}
		if err := r.destroyVersion(ctx, v); err != nil {
			return false, err
		}
	}
	return true, nil
}
