package keystate

import (
	"slices"
	"strings"
)

// sortedIDs is a sorted set of names: the index behind marker paging, so a
// page costs a binary search and a copy of the page, never a scan of every
// key under the state lock.
type sortedIDs []string

func (s *sortedIDs) insert(id string) {
	i, found := slices.BinarySearch(*s, id)
	if !found {
		*s = slices.Insert(*s, i, id)
	}
}

func (s *sortedIDs) remove(id string) {
	if i, found := slices.BinarySearch(*s, id); found {
		*s = slices.Delete(*s, i, i+1)
	}
}

// after returns at most limit names greater than marker ("" for the
// first), and whether more follow.
func (s sortedIDs) after(marker string, limit int) ([]string, bool) {
	i := 0
	if marker != "" {
		i, _ = slices.BinarySearch(s, marker)
		if i < len(s) && s[i] == marker {
			i++
		}
	}
	end := min(i+limit, len(s))
	return s[i:end], end < len(s)
}

// index holds the sorted indexes the List operations page through.
type index struct {
	keys       map[string]*sortedIDs // account → key ids
	aliases    map[string]*sortedIDs // account → alias names
	keyAliases map[string][]aliasID  // key id → aliases pointing at it
}

func newIndex() index {
	return index{keys: map[string]*sortedIDs{}, aliases: map[string]*sortedIDs{}, keyAliases: map[string][]aliasID{}}
}

func ids(m map[string]*sortedIDs, account string) *sortedIDs {
	s := m[account]
	if s == nil {
		s = &sortedIDs{}
		m[account] = s
	}
	return s
}

// lookup finds an account's index without creating it (readers hold only
// the read lock).
func lookup(m map[string]*sortedIDs, account string) sortedIDs {
	if s := m[account]; s != nil {
		return *s
	}
	return nil
}

func (x index) addKey(k *Key)    { ids(x.keys, k.Account).insert(k.ID) }
func (x index) removeKey(k *Key) { ids(x.keys, k.Account).remove(k.ID) }

func (x index) addAlias(a *Alias) {
	ids(x.aliases, a.Account).insert(a.Name)
	id := aliasID{a.Account, a.Name}
	if !slices.Contains(x.keyAliases[a.KeyID], id) {
		x.keyAliases[a.KeyID] = append(x.keyAliases[a.KeyID], id)
	}
}

func (x index) removeAlias(a *Alias) {
	ids(x.aliases, a.Account).remove(a.Name)
	id := aliasID{a.Account, a.Name}
	rest := slices.DeleteFunc(slices.Clone(x.keyAliases[a.KeyID]), func(o aliasID) bool { return o == id })
	if len(rest) == 0 {
		delete(x.keyAliases, a.KeyID)
	} else {
		x.keyAliases[a.KeyID] = rest
	}
}

// KeysPage returns at most limit of the account's keys with ids after
// marker ("" for the first page), in id order, and whether more follow.
func (s *State) KeysPage(account, marker string, limit int) ([]Key, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	page, more := lookup(s.idx.keys, account).after(marker, limit)
	out := make([]Key, 0, len(page))
	for _, id := range page {
		out = append(out, *s.keys[id])
	}
	return out, more
}

// AliasesPage returns at most limit of the account's aliases named after
// marker, in name order, and whether more follow.
func (s *State) AliasesPage(account, marker string, limit int) ([]Alias, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	page, more := lookup(s.idx.aliases, account).after(marker, limit)
	out := make([]Alias, 0, len(page))
	for _, name := range page {
		out = append(out, *s.aliases[aliasID{account, name}])
	}
	return out, more
}

// aliasesOfKey returns the account's aliases pointing at keyID, by name.
func (s *State) aliasesOfKey(account, keyID string) []Alias {
	var out []Alias
	for _, id := range s.idx.keyAliases[keyID] {
		if a := s.aliases[id]; a != nil && id.account == account {
			out = append(out, *a)
		}
	}
	slices.SortFunc(out, func(a, b Alias) int { return strings.Compare(a.Name, b.Name) })
	return out
}
