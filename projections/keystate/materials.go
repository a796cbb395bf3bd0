package keystate

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
