package keystate

import "time"

// LiveMaterials is every material a key still refers to — its key
// materials and its import tokens' wrapping keys — with the commitment the
// ledger recorded for it (the hex SHA-256 of its root-wrapped bytes).
// Backups copy exactly these, and a restore checks each against it.
func (s *State) LiveMaterials() map[string]string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	live := map[string]string{}
	for _, k := range s.keys {
		for _, m := range k.Materials {
			live[m.ID] = m.WrappedHash
		}
		for _, t := range k.ImportTokens {
			live[t.WrappingKey.ID] = t.WrappingKey.WrappedHash
		}
	}
	return live
}

// KeyMaterials is every material key id refers to (its key materials and
// its import tokens' wrapping keys), each with the commitments the ledger
// accepts for it, newest first; false when there is no such key.
func (s *State) KeyMaterials(id string) (map[string][]string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, ok := s.keys[id]
	if !ok {
		return nil, false
	}
	out := map[string][]string{}
	add := func(m, current, previous string) {
		out[m] = []string{current}
		if previous != "" {
			out[m] = append(out[m], previous)
		}
	}
	for _, m := range k.Materials {
		add(m.ID, m.WrappedHash, m.PreviousHash)
	}
	for _, t := range k.ImportTokens {
		add(t.WrappingKey.ID, t.WrappingKey.WrappedHash, t.PreviousWrappingHash)
	}
	return out, true
}

// CheckableMaterials is every material a key still refers to whose
// destruction has not fallen due by now (a deletion or an import expiry
// the scheduler is about to carry out: it may be gone already), each with
// the commitments the ledger accepts for it, newest first, and the key it
// belongs to.
func (s *State) CheckableMaterials(now time.Time) (live map[string][]string, owner map[string]string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	live, owner = map[string][]string{}, map[string]string{}
	add := func(key, m, current, previous string) {
		live[m], owner[m] = []string{current}, key
		if previous != "" {
			live[m] = append(live[m], previous)
		}
	}
	for _, k := range s.keys {
		if k.State == PendingDeletion && !k.DeletionDate.After(now) {
			continue
		}
		for _, m := range k.Materials {
			if m.Imported && m.ExpirationModel == "KEY_MATERIAL_EXPIRES" && !m.ValidTo.After(now) {
				continue
			}
			add(k.ID, m.ID, m.WrappedHash, m.PreviousHash)
		}
		for _, t := range k.ImportTokens {
			add(k.ID, t.WrappingKey.ID, t.WrappingKey.WrappedHash, t.PreviousWrappingHash)
		}
	}
	return live, owner
}
