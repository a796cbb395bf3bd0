package material

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/crypto/secret"
	"github.com/keyledger/keyledger/crypto/shred"
)

// Two copies. Every material is kept twice, each copy checked on its own:
// the sealed bytes in two buckets (<bucket> and <bucket>-copy: separate
// streams, separate block files, each record under nats-server's checksum
// and sealed under an AEAD), and the per-material key in two key stores
// (two slot files on the embedded default, each slot with its own
// checksum; two buckets otherwise). A read takes the first pair of key and
// sealed bytes that opens and whose root-wrapped bytes match the ledger's
// commitment, and rewrites every part that is missing, damaged, or holds
// other bytes from it (a repair), so one damaged block, slot or file loses
// nothing. Check does the same for every live material, at start and in
// the background.
//
// A repair never brings back a destroyed material: it needs a key that
// still opens the sealed bytes, and Destroy removes both keys first,
// holding the lock repairs take, so a repair after it finds no key to copy.
// A crash inside Destroy leaves the first copy of the key only (the second
// goes first), the state a crash inside Put leaves: Reclaim destroys it
// when the ledger does not hold the material live; when the ledger does (a
// deletion that fell due and was cut short) a repair may copy the key back
// until the scheduler's next run destroys both, before the ledger records
// the deletion.

// ErrUnreadable is what an *UnreadableError matches: the material was
// stored and not destroyed, but no copy opens (damage, not a deletion).
var ErrUnreadable = errors.New("material: key material unreadable")

// UnreadableError names a material no copy of which can be read, and why
// each part failed.
type UnreadableError struct {
	ID    string
	Parts []string // each failed part and why
}

func (e *UnreadableError) Error() string {
	return fmt.Sprintf("material: key material %s is unreadable: every stored copy is damaged or missing (%s); "+
		"it was not deleted: restore it from a backup (keyledger material restore)", e.ID, strings.Join(e.Parts, "; "))
}

func (e *UnreadableError) Is(target error) bool { return target == ErrUnreadable }

// copyNames name the parts in messages.
var copyNames = [2]string{"first copy", "second copy"}

// readResult is a read and what it found wrong.
type readResult struct {
	wrapped  []byte
	revision uint64   // of the first copy's entry, as read or rewritten
	bad      []string // parts missing, damaged or holding other bytes
	repaired bool     // bad parts rewritten
	// why, when nothing opened, names every part (also when the error is
	// ErrNotFound: for a material the ledger holds live, that is loss too).
	why *UnreadableError
}

// read finds id's material in either copy (see Two copies). commitments,
// when given, are the only root-wrapped bytes accepted, earlier ones
// preferred. With repair, bad parts are rewritten.
func (s *Store) read(ctx context.Context, id string, commitments []string, repair bool) ([]byte, uint64, error) {
	r, err := s.readParts(ctx, id, commitments, repair)
	return r.wrapped, r.revision, err
}

func (s *Store) readParts(ctx context.Context, id string, commitments []string, repair bool) (readResult, error) {
	var (
		keys    [2]secret.Bytes
		keyErr  [2]error
		entry   [2]jetstream.KeyValueEntry
		entErr  [2]error
		parts   []string // why each bad part is bad
		badKey  [2]bool
		badCopy [2]bool
	)
	for i := range 2 {
		keys[i], keyErr[i] = s.keys[i].Get(ctx, id)
		entry[i], entErr[i] = s.kv[i].Get(ctx, id)
		if errors.Is(entErr[i], jetstream.ErrKeyNotFound) || errors.Is(entErr[i], jetstream.ErrKeyDeleted) {
			entErr[i] = ErrNotFound
		}
	}
	defer func() {
		for _, k := range keys {
			k.Clear()
		}
	}()
	rank := func(wrapped []byte) int {
		if len(commitments) == 0 {
			return 0
		}
		return slices.Index(commitments, Commitment(wrapped))
	}
	// The best pair: lowest rank, first copy first.
	best, bestKey, bestCopy := -1, -1, -1
	var wrapped []byte
	opened := [2]bool{}
	for c := range 2 {
		if entErr[c] != nil {
			continue
		}
		v := entry[c].Value()
		if !shred.IsSealed(v) { // version 1: the root wrap itself, no key
			opened[c] = true
			if r := rank(v); r >= 0 && (best < 0 || r < best) {
				best, bestKey, bestCopy, wrapped = r, -1, c, v
			}
			continue
		}
		for k := range 2 {
			if keyErr[k] != nil {
				continue
			}
			w, err := shred.Open(keys[k], id, v)
			if err != nil {
				continue
			}
			opened[c] = true
			if r := rank(w); r >= 0 && (best < 0 || r < best) {
				best, bestKey, bestCopy, wrapped = r, k, c, w
			}
		}
	}
	if best < 0 {
		why := describe(id, keyErr, entErr, opened, commitments)
		return readResult{why: why}, unreadable(keyErr, entErr, opened, why)
	}
	res := readResult{wrapped: wrapped}
	chosen := entry[bestCopy].Value()
	if entErr[0] == nil && bytes.Equal(entry[0].Value(), chosen) {
		res.revision = entry[0].Revision()
	}
	for i := range 2 {
		badCopy[i] = entErr[i] != nil || !bytes.Equal(entry[i].Value(), chosen)
		if bestKey >= 0 {
			badKey[i] = keyErr[i] != nil || !keys[i].Equal(keys[bestKey])
		}
		if badCopy[i] {
			parts = append(parts, "sealed bytes, "+copyNames[i])
		}
		if badKey[i] {
			parts = append(parts, "per-material key, "+copyNames[i])
		}
	}
	res.bad = parts
	if !repair || len(parts) == 0 {
		return res, nil
	}
	rev, err := s.rewrite(ctx, id, bestKey, keys, chosen, badKey, badCopy)
	if err != nil {
		return res, nil // served from the good copy; Check reports it again
	}
	if rev != 0 {
		res.revision = rev
	}
	res.repaired = true
	return res, nil
}

// rewrite repairs the bad parts of id from the chosen key (keys[from],
// -1 for version 1 material) and sealed bytes, unless a Destroy removed
// the key meanwhile. It returns the first copy's new revision, if it
// rewrote it.
func (s *Store) rewrite(ctx context.Context, id string, from int, keys [2]secret.Bytes, sealed []byte,
	badKey, badCopy [2]bool) (uint64, error) {
	s.repair.Lock()
	defer s.repair.Unlock()
	if from >= 0 {
		now, err := s.keys[from].Get(ctx, id)
		if err != nil {
			return 0, err // destroyed (or failing) meanwhile: write nothing
		}
		same := now.Equal(keys[from])
		now.Clear()
		if !same {
			return 0, errors.New("material: key changed while repairing")
		}
		for i := range 2 {
			if badKey[i] {
				if err := s.keys[i].Put(ctx, id, keys[from]); err != nil {
					return 0, err
				}
			}
		}
	}
	var rev uint64
	for i := range 2 {
		if !badCopy[i] {
			continue
		}
		r, err := s.kv[i].Put(ctx, id, sealed)
		if err != nil {
			return 0, err
		}
		if i == 0 {
			rev = r
		}
	}
	return rev, nil
}

// unreadable is the error when nothing opened: ErrNotFound when nothing is
// stored or the keys are gone (destroyed; sealed remnants are erased by
// Destroy and Sweep), else why.
func unreadable(keyErr, entErr [2]error, opened [2]bool, why *UnreadableError) error {
	keysGone := errors.Is(keyErr[0], ErrNotFound) && errors.Is(keyErr[1], ErrNotFound)
	noEntries := errors.Is(entErr[0], ErrNotFound) && errors.Is(entErr[1], ErrNotFound)
	sealedOnly := true // every entry present is sealed (needs a key)
	for i := range 2 {
		if entErr[i] == nil && opened[i] && keysGone {
			sealedOnly = false // a version-1 entry opened but is not the committed material
		}
	}
	if noEntries || keysGone && sealedOnly {
		return ErrNotFound
	}
	return why
}

// describe names every part of a material nothing of which opened.
func describe(id string, keyErr, entErr [2]error, opened [2]bool, commitments []string) *UnreadableError {
	e := &UnreadableError{ID: id}
	for i := range 2 {
		switch {
		case errors.Is(keyErr[i], ErrNotFound):
			e.Parts = append(e.Parts, copyNames[i]+" of its key: missing")
		case errors.Is(keyErr[i], errSlotBroken):
			e.Parts = append(e.Parts, copyNames[i]+" of its key: slot fails its checksum")
		case keyErr[i] != nil:
			e.Parts = append(e.Parts, copyNames[i]+" of its key: "+keyErr[i].Error())
		}
	}
	for i := range 2 {
		switch {
		case errors.Is(entErr[i], ErrNotFound):
			e.Parts = append(e.Parts, copyNames[i]+" of the sealed bytes: missing from the bucket")
		case entErr[i] != nil:
			e.Parts = append(e.Parts, copyNames[i]+" of the sealed bytes: "+entErr[i].Error())
		case opened[i] && len(commitments) > 0:
			e.Parts = append(e.Parts, copyNames[i]+" of the sealed bytes: opens, but is not the material the ledger commits to")
		default:
			e.Parts = append(e.Parts, copyNames[i]+" of the sealed bytes: does not open with either key")
		}
	}
	return e
}

// Checked is what Check found.
type Checked struct {
	Materials  int                 // live materials checked
	Repaired   map[string][]string // material id → parts rewritten from the other copy
	Unreadable []*UnreadableError  // no copy opens: the key material is lost here
	Dropped    int                 // damaged key slots zeroed once nothing needed them
}

// Check reads every live material (id → the commitments the ledger
// accepts for it, newest first) from both copies, repairs every bad part
// from the good one, and reports those no copy opens. Its cost grows with
// the live materials (four reads each), not the ledger.
func (s *Store) Check(ctx context.Context, live map[string][]string) (Checked, error) {
	return s.check(ctx, live, true)
}

// Verify is Check without repairs: Repaired lists the parts a Check would
// rewrite.
func (s *Store) Verify(ctx context.Context, live map[string][]string) (Checked, error) {
	return s.check(ctx, live, false)
}

func (s *Store) check(ctx context.Context, live map[string][]string, repair bool) (Checked, error) {
	res := Checked{Repaired: map[string][]string{}}
	for _, id := range slices.Sorted(func(yield func(string) bool) {
		for id := range live {
			if !yield(id) {
				return
			}
		}
	}) {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		res.Materials++
		r, err := s.readParts(ctx, id, live[id], repair)
		switch {
		case r.why != nil: // for a live material, nothing stored is loss too
			res.Unreadable = append(res.Unreadable, r.why)
		case err != nil:
			return res, err
		case len(r.bad) > 0 && (r.repaired || !repair):
			res.Repaired[id] = r.bad
		}
	}
	for _, f := range s.slots {
		if f == nil || !repair {
			continue
		}
		n, err := f.DropDamaged(len(res.Unreadable) == 0)
		res.Dropped += n
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// ErrReadable is Restore's answer when a stored copy still opens: nothing
// needs restoring (Check repairs the other copy).
var ErrReadable = errors.New("material: a stored copy still opens; nothing to restore")

// ErrNotCommitted refuses bytes that are not what the ledger commits to.
var ErrNotCommitted = errors.New("material: the bytes offered do not match the ledger's commitment")

// Restore puts back root-wrapped material that no stored copy opens any
// more (taken from a backup), if its Commitment is one of commitments (the
// ledger's for id): whatever damaged remains are destroyed, then it is
// stored as Put stores new material, under a fresh per-material key, in
// both copies. It refuses while a copy still opens (ErrReadable).
func (s *Store) Restore(ctx context.Context, id string, wrapped []byte, commitments ...string) error {
	if !slices.Contains(commitments, Commitment(wrapped)) {
		return fmt.Errorf("%w (material %s)", ErrNotCommitted, id)
	}
	_, _, err := s.read(ctx, id, commitments, false)
	switch {
	case err == nil:
		return ErrReadable
	case !errors.Is(err, ErrUnreadable) && !errors.Is(err, ErrNotFound):
		return err
	}
	if err := s.Destroy(ctx, id); err != nil {
		return err
	}
	return s.Put(ctx, id, wrapped)
}
