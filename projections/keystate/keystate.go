// Package keystate folds ledger events into the current state of keys,
// aliases, tags, policies and deletion schedules.
//
// The fold is pure: the state after a sequence of events depends only on
// those events, so replaying the ledger from its first event rebuilds exactly
// the state a live instance holds. Refused requests change nothing.
//
// State is safe for concurrent use: Apply takes a write lock; readers get
// copies. Maps and slices inside a returned Key are never mutated afterwards
// (Apply replaces them), so callers may read them freely but must not modify
// them. The state never holds key material, only material ids.
package keystate

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keyledger/keyledger/crypto/keyspec"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/event"
)

// KeyState is an AWS KMS KeyState.
type KeyState string

const (
	Enabled         KeyState = "Enabled"
	Disabled        KeyState = "Disabled"
	PendingDeletion KeyState = "PendingDeletion"
)

// Material is one key material of a key.
type Material struct {
	ID          string
	WrappedHash string
	Created     time.Time
}

// Key is a KMS key as the ledger says it is now.
type Key struct {
	ID                string
	Account           string
	Region            string
	Created           time.Time
	Description       string
	Spec              keyspec.Spec
	Usage             keyspec.Usage
	Origin            string
	MultiRegion       bool
	State             KeyState
	DeletionDate      time.Time
	PendingWindowDays int
	Policy            string
	Tags              map[string]string
	Materials         []Material // oldest first; the last is current
}

// CurrentMaterial is the material new encryptions use.
func (k *Key) CurrentMaterial() Material { return k.Materials[len(k.Materials)-1] }

// Material finds one of the key's materials by id.
func (k *Key) Material(id string) (Material, bool) {
	for _, m := range k.Materials {
		if m.ID == id {
			return m, true
		}
	}
	return Material{}, false
}

// Alias is a KMS alias.
type Alias struct {
	Name    string
	Account string
	Region  string
	KeyID   string
	Created time.Time
	Updated time.Time
}

// DeletedKey remembers a deleted key's destroyed materials, so material
// destruction can be completed after a crash.
type DeletedKey struct {
	ID        string
	Materials []string
	Deleted   time.Time
}

// State is the fold of the ledger.
type State struct {
	mu      sync.RWMutex
	keys    map[string]*Key
	aliases map[aliasID]*Alias
	deleted map[string]DeletedKey
	applied uint64 // events applied
}

type aliasID struct{ account, name string }

// New returns an empty state.
func New() *State {
	return &State{keys: map[string]*Key{}, aliases: map[aliasID]*Alias{}, deleted: map[string]DeletedKey{}}
}

// Apply folds committed records in order.
func (s *State) Apply(recs []ledger.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		s.apply(r.Event)
	}
}

func (s *State) apply(e *event.Event) {
	s.applied++
	if e.Refused() {
		return
	}
	k := s.keys[e.KeyID]
	switch b := e.Body.(type) {
	case *event.KeyCreated:
		s.keys[e.KeyID] = &Key{
			ID: e.KeyID, Account: e.Account, Region: e.Region, Created: e.Time,
			Description: b.Description, Spec: keyspec.Spec(b.KeySpec), Usage: keyspec.Usage(b.KeyUsage),
			Origin: b.Origin, MultiRegion: b.MultiRegion, State: Enabled, Policy: b.Policy,
			Tags:      maps.Clone(b.Tags),
			Materials: []Material{{ID: b.Material.ID, WrappedHash: b.Material.WrappedHash, Created: e.Time}},
		}
	case *event.KeyEnabled:
		s.update(k, func(k *Key) { k.State = Enabled })
	case *event.KeyDisabled:
		s.update(k, func(k *Key) { k.State = Disabled })
	case *event.KeyDescriptionUpdated:
		s.update(k, func(k *Key) { k.Description = b.Description })
	case *event.KeyDeletionScheduled:
		s.update(k, func(k *Key) {
			k.State, k.DeletionDate, k.PendingWindowDays = PendingDeletion, b.DeletionDate, b.PendingWindowDays
		})
	case *event.KeyDeletionCanceled:
		s.update(k, func(k *Key) { k.State, k.DeletionDate, k.PendingWindowDays = Disabled, time.Time{}, 0 })
	case *event.KeyDeleted:
		delete(s.keys, e.KeyID)
		for id, a := range s.aliases {
			if a.KeyID == e.KeyID {
				delete(s.aliases, id)
			}
		}
		s.deleted[e.KeyID] = DeletedKey{ID: e.KeyID, Materials: slices.Clone(b.DestroyedMaterials), Deleted: e.Time}
	case *event.KeyTagged:
		s.update(k, func(k *Key) {
			tags := maps.Clone(k.Tags)
			if tags == nil {
				tags = map[string]string{}
			}
			maps.Copy(tags, b.Tags)
			k.Tags = tags
		})
	case *event.KeyUntagged:
		s.update(k, func(k *Key) {
			tags := maps.Clone(k.Tags)
			for _, t := range b.TagKeys {
				delete(tags, t)
			}
			k.Tags = tags
		})
	case *event.AliasCreated:
		s.aliases[aliasID{e.Account, b.AliasName}] = &Alias{Name: b.AliasName, Account: e.Account, Region: e.Region,
			KeyID: e.KeyID, Created: e.Time, Updated: e.Time}
	case *event.AliasUpdated:
		if a := s.aliases[aliasID{e.Account, b.AliasName}]; a != nil {
			c := *a
			c.KeyID, c.Updated = e.KeyID, e.Time
			s.aliases[aliasID{e.Account, b.AliasName}] = &c
		}
	case *event.AliasDeleted:
		delete(s.aliases, aliasID{e.Account, b.AliasName})
	}
}

// update replaces k with a modified copy (readers may hold the old one).
func (s *State) update(k *Key, fn func(*Key)) {
	if k == nil {
		return
	}
	c := *k
	fn(&c)
	s.keys[k.ID] = &c
}

// Key returns the key with id.
func (s *State) Key(id string) (Key, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, ok := s.keys[id]
	if !ok {
		return Key{}, false
	}
	return *k, true
}

// Keys returns the account's keys sorted by id.
func (s *State) Keys(account string) []Key {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Key
	for _, k := range s.keys {
		if k.Account == account {
			out = append(out, *k)
		}
	}
	slices.SortFunc(out, func(a, b Key) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Alias returns the account's alias with the given name ("alias/…").
func (s *State) Alias(account, name string) (Alias, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.aliases[aliasID{account, name}]
	if !ok {
		return Alias{}, false
	}
	return *a, true
}

// Aliases returns the account's aliases sorted by name; with keyID set, only
// those pointing at that key.
func (s *State) Aliases(account, keyID string) []Alias {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Alias
	for _, a := range s.aliases {
		if a.Account == account && (keyID == "" || a.KeyID == keyID) {
			out = append(out, *a)
		}
	}
	slices.SortFunc(out, func(a, b Alias) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// DueForDeletion returns keys pending deletion whose date is not after now.
func (s *State) DueForDeletion(now time.Time) []Key {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Key
	for _, k := range s.keys {
		if k.State == PendingDeletion && !k.DeletionDate.After(now) {
			out = append(out, *k)
		}
	}
	slices.SortFunc(out, func(a, b Key) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Deleted returns every deleted key, sorted by id.
func (s *State) Deleted() []DeletedKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := slices.Collect(maps.Values(s.deleted))
	slices.SortFunc(out, func(a, b DeletedKey) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// WasDeleted reports whether the key with id existed and was deleted.
func (s *State) WasDeleted(id string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.deleted[id]
	return ok
}

// Snapshot is a comparable copy of the whole state.
type Snapshot struct {
	Applied uint64
	Keys    []Key
	Aliases []Alias
	Deleted []DeletedKey
}

// Snapshot copies the whole state in a stable order.
func (s *State) Snapshot() Snapshot {
	s.mu.RLock()
	var snap Snapshot
	snap.Applied = s.applied
	for _, k := range s.keys {
		snap.Keys = append(snap.Keys, *k)
	}
	for _, a := range s.aliases {
		snap.Aliases = append(snap.Aliases, *a)
	}
	s.mu.RUnlock()
	snap.Deleted = s.Deleted()
	slices.SortFunc(snap.Keys, func(a, b Key) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(snap.Aliases, func(a, b Alias) int { return strings.Compare(a.Account+"/"+a.Name, b.Account+"/"+b.Name) })
	return snap
}
