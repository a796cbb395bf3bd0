package keystate

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/keyledger/keyledger/crypto/keyspec"
	"github.com/keyledger/keyledger/ledger/event"
)

// Multi-Region keys. Related keys (mrk-…, one per region) share material,
// spec, usage, origin and automatic rotation; the primary's region decides
// them, and every change of them counts one SyncVersion, which travels with
// the change to the replicas' regions and back in their acknowledgements.
// Each region folds only its own ledger: the primary knows which version
// each replica confirmed (Replica.Acked), a replica knows what the primary
// last sent it.
//
// New material does not become current until every related key holds it:
// on the primary a material rotated in while a replica has not confirmed
// its version is Pending, and CurrentMaterial skips it; a replica uses the
// material the primary names current. So no related key ever encrypts
// under material another related key lacks.

// PendingReplicaDeletion is a multi-Region primary scheduled for deletion
// while it still has replicas: unusable, and its waiting period starts
// only when the last replica is deleted.
const PendingReplicaDeletion KeyState = "PendingReplicaDeletion"

// Replica is one related key of a multi-Region key in another region.
type Replica struct {
	Region string
	// Acked is, on the primary, the newest version that region confirmed
	// (0: not created there yet).
	Acked uint64 `json:",omitempty"`
	// Create is, on the primary until the replica is confirmed, what it is
	// created with (ReplicateKey's own description, policy and tags).
	Create *ReplicaCreate `json:",omitempty"`
	// Since is, on the primary, the version at which ReplicateKey made
	// this replica: a deletion reported of an earlier replica in the same
	// region does not remove it.
	Since uint64 `json:",omitempty"`
}

// ReplicaCreate is what a replica is made with in its region.
type ReplicaCreate struct {
	Description string
	Policy      string
	Tags        map[string]string
	Actor       *event.Actor // who asked (ReplicateKey's caller)
	EventID     string       // the ReplicateKey event
}

// PeerRegion is another region's public replication key, as its
// announcement (signed by its writer) was recorded here.
type PeerRegion struct {
	Region    string
	PublicKey string // base64
	WriterID  string
}

// IsPrimary reports whether k is a multi-Region primary key.
func (k *Key) IsPrimary() bool { return k.MultiRegion && k.PrimaryRegion == k.Region }

// IsReplica reports whether k is a multi-Region replica key.
func (k *Key) IsReplica() bool { return k.MultiRegion && k.PrimaryRegion != k.Region }

// Replica returns the related key in region, if k has one there.
func (k *Key) Replica(region string) (Replica, bool) {
	for _, r := range k.Replicas {
		if r.Region == region {
			return r, true
		}
	}
	return Replica{}, false
}

// foldMultiRegion folds what an event means for multi-Region keys, after
// the event's own fold: before is the key as it was before the event.
func (s *State) foldMultiRegion(r event.Record, before *Key) {
	e := r.Event
	if _, ok := e.Body.(*event.APICall); ok {
		return // most events: an audited call, which no case below concerns
	}
	id := r.Hash.EventID()
	switch b := e.Body.(type) {
	case *event.KeyCreated:
		if b.MultiRegion {
			s.update(e.KeyID, func(k *Key) {
				k.PrimaryRegion, k.SyncVersion, k.SyncEventID = e.Region, 1, id
				k.Materials = versioned(k.Materials, 1)
			})
			s.mrks[e.KeyID] = true
		}
	case *event.KeyRotated:
		s.updatePrimary(e.KeyID, func(k *Key) {
			k.SyncVersion, k.SyncEventID = k.SyncVersion+1, id
			mats := slices.Clone(k.Materials)
			last := &mats[len(mats)-1]
			last.SyncVersion, last.Pending = k.SyncVersion, !allAcked(k.Replicas, k.SyncVersion)
			k.Materials = mats
		})
	case *event.KeyRotationEnabled, *event.KeyRotationDisabled, *event.KeyMaterialImported:
		s.updatePrimary(e.KeyID, func(k *Key) { k.SyncVersion, k.SyncEventID = k.SyncVersion+1, id })
	case *event.KeyDeletionScheduled:
		s.updatePrimary(e.KeyID, func(k *Key) {
			if len(k.Replicas) > 0 {
				k.State, k.DeletionDate = PendingReplicaDeletion, time.Time{}
			}
		})
	case *event.KeyDeleted:
		if before != nil && before.MultiRegion {
			delete(s.mrks, e.KeyID)
			d := s.deleted[e.KeyID]
			d.Account, d.PrimaryRegion, d.SyncVersion = before.Account, before.PrimaryRegion, before.SyncVersion
			s.deleted[e.KeyID] = d
		}
	case *event.KeyReplicated:
		s.updatePrimary(e.KeyID, func(k *Key) {
			k.SyncVersion, k.SyncEventID = k.SyncVersion+1, id
			k.Replicas = withReplica(k.Replicas, Replica{Region: b.ReplicaRegion, Since: k.SyncVersion, Create: &ReplicaCreate{
				Description: b.Description, Policy: b.Policy, Tags: maps.Clone(b.Tags), Actor: e.Actor, EventID: id}})
		})
	case *event.ReplicaKeyCreated:
		s.applyReplicaKeyCreated(e, b, id)
		s.undestroy(b.Materials)
	case *event.MultiRegionKeySynchronized:
		s.update(e.KeyID, func(k *Key) { applyShared(k, &b.MultiRegionShared, id) })
		s.undestroy(b.Materials)
	case *event.ReplicaAcknowledged:
		s.update(e.KeyID, func(k *Key) {
			switch {
			case k.IsPrimary():
				applyAcknowledged(k, b, e, id)
			case k.Updating && b.Deleted && b.Region == k.PrimaryRegion:
				undoMove(k, b, id)
			}
		})
	case *event.PrimaryRegionUpdated:
		s.updatePrimary(e.KeyID, func(k *Key) {
			var reps []Replica
			for _, rep := range k.Replicas {
				if rep.Region != b.PrimaryRegion {
					reps = append(reps, Replica{Region: rep.Region})
				}
			}
			k.Replicas = withReplica(reps, Replica{Region: k.Region})
			k.PrimaryRegion, k.Updating = b.PrimaryRegion, true
			k.SyncVersion, k.SyncEventID = k.SyncVersion+1, id
		})
	case *event.PeerRegionRegistered:
		s.peers[b.Region] = PeerRegion{Region: b.Region, PublicKey: b.PublicKey, WriterID: b.WriterID}
	}
}

// undestroy forgets that materials were destroyed here: a replica made
// again in a region where an earlier one was deleted holds the same
// material ids again (as re-imported material does).
func (s *State) undestroy(mats []event.SyncedMaterial) {
	for _, m := range mats {
		if !m.Imported {
			delete(s.destroyed, m.Material.ID)
		}
	}
}

// DeletedKey returns what is remembered of a deleted key.
func (s *State) DeletedKey(id string) (DeletedKey, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	d, ok := s.deleted[id]
	return d, ok
}

// updatePrimary is update for a multi-Region primary key only.
func (s *State) updatePrimary(id string, fn func(*Key)) {
	if k := s.keys[id]; k == nil || !k.IsPrimary() {
		return
	}
	s.update(id, fn)
}

func (s *State) applyReplicaKeyCreated(e *event.Event, b *event.ReplicaKeyCreated, id string) {
	nk := &Key{
		ID: e.KeyID, Account: e.Account, Region: e.Region, Created: e.Time,
		Description: b.Description, Spec: keyspec.Spec(b.KeySpec), Usage: keyspec.Usage(b.KeyUsage),
		Origin: b.Origin, MultiRegion: true, State: Enabled, Policy: b.Policy,
		Tags: maps.Clone(b.Tags), PublicKey: b.PublicKey,
	}
	applyShared(nk, &b.MultiRegionShared, id)
	if !nk.HasMaterial() {
		nk.State = PendingImport
	}
	if old := s.keys[e.KeyID]; old != nil {
		s.idx.removeKey(old)
	}
	s.keys[e.KeyID] = nk
	s.idx.addKey(nk)
	s.mrks[e.KeyID] = true
}

// applyShared folds shared properties that reached this region's key k.
func applyShared(k *Key, sh *event.MultiRegionShared, id string) {
	wasReplica := k.IsReplica()
	k.PrimaryRegion = sh.PrimaryRegion
	k.RotationPeriodDays, k.NextRotation = sh.RotationPeriodDays, sh.NextRotation
	k.SyncVersion, k.SyncEventID = sh.Version, id
	mats := slices.Clone(k.Materials)
	for _, m := range sh.Materials {
		if m.Imported {
			if !slices.Contains(k.ExpectedImports, m.Material.ID) {
				k.ExpectedImports = append(slices.Clone(k.ExpectedImports), m.Material.ID)
			}
			continue
		}
		if slices.ContainsFunc(mats, func(x Material) bool { return x.ID == m.Material.ID }) {
			continue
		}
		mats = append(mats, Material{ID: m.Material.ID, WrappedHash: m.Material.WrappedHash, Created: m.Created,
			RotationType: m.RotationType, SyncVersion: sh.Version})
	}
	// The current material is the primary's; those after it wait.
	if cur := slices.IndexFunc(mats, func(x Material) bool { return x.ID == sh.CurrentMaterial }); cur >= 0 {
		for i := range mats {
			mats[i].Pending = i > cur
		}
	}
	k.Materials = mats
	if k.State == PendingImport && k.HasMaterial() {
		k.State = Enabled
	}
	if k.Region == sh.PrimaryRegion {
		if wasReplica || k.Replicas == nil { // this key takes the primary's role
			var reps []Replica
			for _, r := range sh.ReplicaRegions {
				if r == k.Region {
					continue
				}
				// Every related key is sent this version again, the
				// one that handed the role over included: that is
				// how it learns the role was taken.
				reps = append(reps, Replica{Region: r})
			}
			k.Replicas = reps
			settle(k)
			// A replica scheduled for deletion that takes the role is a
			// primary with replicas pending deletion: its window starts
			// when the last replica is deleted, as ScheduleKeyDeletion
			// of a primary has it; never deleted under its replicas.
			if k.State == PendingDeletion && len(reps) > 0 {
				k.State, k.DeletionDate = PendingReplicaDeletion, time.Time{}
			}
		}
		return
	}
	reps := make([]Replica, 0, len(sh.ReplicaRegions))
	for _, r := range sh.ReplicaRegions {
		reps = append(reps, Replica{Region: r})
	}
	k.Replicas = reps
	if k.Updating && sh.SourceRegion == sh.PrimaryRegion { // the new primary confirms the move
		k.Updating = false
	}
}

// undoMove gives the primary role back to k, a former primary still
// Updating, whose move to region b.Region failed: the replica there was
// deleted before the move reached it (its region says so). Without it, k
// would be a replica of a deleted key, Updating for ever.
func undoMove(k *Key, b *event.ReplicaAcknowledged, id string) {
	var reps []Replica
	for _, rep := range k.Replicas {
		if rep.Region != b.Region && rep.Region != k.Region {
			reps = append(reps, Replica{Region: rep.Region})
		}
	}
	k.Replicas = reps
	k.PrimaryRegion, k.Updating = k.Region, false
	k.SyncVersion, k.SyncEventID = k.SyncVersion+1, id
	if k.State == PendingDeletion && len(reps) > 0 {
		k.State, k.DeletionDate = PendingReplicaDeletion, time.Time{}
	}
}

func applyAcknowledged(k *Key, b *event.ReplicaAcknowledged, e *event.Event, id string) {
	i := slices.IndexFunc(k.Replicas, func(r Replica) bool { return r.Region == b.Region })
	if i < 0 {
		return
	}
	reps := slices.Clone(k.Replicas)
	if b.Deleted && b.Version < reps[i].Since {
		return // an earlier replica's deletion, reported late
	}
	if b.Deleted {
		k.Replicas = slices.Delete(reps, i, i+1)
		k.SyncVersion, k.SyncEventID = k.SyncVersion+1, id
		if len(k.Replicas) == 0 && k.State == PendingReplicaDeletion {
			k.State, k.DeletionDate = PendingDeletion, e.Time.Add(days(k.PendingWindowDays))
		}
	} else {
		reps[i].Acked = max(reps[i].Acked, b.Version)
		if reps[i].Acked > 0 {
			reps[i].Create = nil
		}
		k.Replicas = reps
	}
	if settle(k) { // the current material changed: the replicas must hear of it
		k.SyncVersion, k.SyncEventID = k.SyncVersion+1, id
	}
}

// settle makes current, on a primary, the pending materials every replica
// has confirmed, and reports whether it did.
func settle(k *Key) bool {
	var mats []Material
	for i, m := range k.Materials {
		if !m.Pending || !allAcked(k.Replicas, m.SyncVersion) {
			continue
		}
		if mats == nil {
			mats = slices.Clone(k.Materials)
		}
		mats[i].Pending = false
	}
	if mats != nil {
		k.Materials = mats
	}
	return mats != nil
}

func allAcked(reps []Replica, v uint64) bool {
	for _, r := range reps {
		if r.Acked < v {
			return false
		}
	}
	return true
}

// withReplica is reps with r added (or replacing the one in its region),
// sorted by region.
func withReplica(reps []Replica, r Replica) []Replica {
	out := slices.DeleteFunc(slices.Clone(reps), func(x Replica) bool { return x.Region == r.Region })
	out = append(out, r)
	slices.SortFunc(out, func(a, b Replica) int { return strings.Compare(a.Region, b.Region) })
	return out
}

func versioned(mats []Material, v uint64) []Material {
	out := slices.Clone(mats)
	for i := range out {
		out[i].SyncVersion = v
	}
	return out
}

// MultiRegionKeys returns every multi-Region key this region holds, sorted
// by id.
func (s *State) MultiRegionKeys() []Key {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Key, 0, len(s.mrks))
	for id := range s.mrks {
		if k := s.keys[id]; k != nil {
			out = append(out, *k)
		}
	}
	slices.SortFunc(out, func(a, b Key) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// DeletedReplicas returns the multi-Region replica keys deleted in this
// region, whose primaries must hear of it.
func (s *State) DeletedReplicas() []DeletedKey {
	var out []DeletedKey
	for _, d := range s.Deleted() {
		if d.PrimaryRegion != "" {
			out = append(out, d)
		}
	}
	return out
}

// Peer returns the replication key region announced, if recorded.
func (s *State) Peer(region string) (PeerRegion, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.peers[region]
	return p, ok
}
