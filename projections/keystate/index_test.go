package keystate

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyledger/keyledger/ledger/event"
)

// pageAll walks a paged listing to its end.
func pageAll[T any](fetch func(after string, limit int) ([]T, bool), name func(T) string, limit int) []string {
	var out []string
	after := ""
	for {
		page, more := fetch(after, limit)
		for _, x := range page {
			out = append(out, name(x))
		}
		if !more {
			return out
		}
		after = name(page[len(page)-1])
	}
}

// TestPagingAtManyKeys creates keys and aliases in two accounts in random
// order, deletes some, and pages through both listings at several page
// sizes: every page is in order, nothing is missed or repeated.
func TestPagingAtManyKeys(t *testing.T) {
	s := New()
	r := rand.New(rand.NewPCG(1, 2))
	const n = 3000
	order := r.Perm(n)
	want := map[string][]string{}
	wantAliases := map[string][]string{}
	i := 0
	for _, p := range order {
		account := []string{"111122223333", "444455556666"}[p%2]
		id := fmt.Sprintf("k-%05d", p)
		alias := fmt.Sprintf("alias/a-%05d", p)
		recs := []event.Record{
			{Event: &event.Event{Index: uint64(i), Account: account, KeyID: id, Body: &event.KeyCreated{KeySpec: "SYMMETRIC_DEFAULT",
				Material: event.MaterialRef{ID: "m" + id}}}},
			{Event: &event.Event{Index: uint64(i + 1), Account: account, KeyID: id, Body: &event.AliasCreated{AliasName: alias}}},
		}
		i += 2
		if p%7 == 0 { // deleted again, with its alias
			recs = append(recs, event.Record{Event: &event.Event{Index: uint64(i), Account: account, KeyID: id,
				Body: &event.KeyDeleted{DestroyedMaterials: []string{"m" + id}}}})
			i++
		} else {
			want[account] = append(want[account], id)
			wantAliases[account] = append(wantAliases[account], alias)
		}
		s.Apply(recs)
	}
	for _, account := range []string{"111122223333", "444455556666", "999999999999"} {
		slices.Sort(want[account])
		slices.Sort(wantAliases[account])
		for _, limit := range []int{1, 7, 100, 1000} {
			got := pageAll(func(after string, l int) ([]Key, bool) { return s.KeysPage(account, after, l) },
				func(k Key) string { return k.ID }, limit)
			if diff := cmp.Diff(want[account], got); diff != "" {
				t.Fatalf("keys of %s at limit %d (-want +got):\n%s", account, limit, diff)
			}
			gotA := pageAll(func(after string, l int) ([]Alias, bool) { return s.AliasesPage(account, after, l) },
				func(a Alias) string { return a.Name }, limit)
			if diff := cmp.Diff(wantAliases[account], gotA); diff != "" {
				t.Fatalf("aliases of %s at limit %d (-want +got):\n%s", account, limit, diff)
			}
		}
	}
	// A marker between names (a key deleted since) continues after it.
	page, _ := s.KeysPage("111122223333", "k-00000", 1)
	if len(page) != 1 || page[0].ID <= "k-00000" {
		t.Fatalf("page after a deleted key's marker: %v", page)
	}
	// Re-pointing an alias moves it between keys' alias lists.
	s.Apply([]event.Record{{Event: &event.Event{Index: uint64(i), Account: "111122223333", KeyID: "k-00002",
		Body: &event.AliasUpdated{AliasName: "alias/a-00004"}}}})
	names := func(as []Alias) (out []string) {
		for _, a := range as {
			out = append(out, a.Name)
		}
		return out
	}
	if got := names(s.Aliases("111122223333", "k-00002")); !slices.Equal(got, []string{"alias/a-00002", "alias/a-00004"}) {
		t.Fatalf("aliases of k-00002 after the update: %v", got)
	}
	if got := s.Aliases("111122223333", "k-00004"); len(got) != 0 {
		t.Fatalf("k-00004 still has aliases: %v", got)
	}
}

// BenchmarkKeysPage is ListKeys' state read (Limit=1) at 20,000 keys.
func BenchmarkKeysPage(b *testing.B) {
	s := New()
	for p := range 20000 {
		s.Apply([]event.Record{{Event: &event.Event{Index: uint64(p), Account: "111122223333", KeyID: fmt.Sprintf("k-%05d", p),
			Body: &event.KeyCreated{KeySpec: "SYMMETRIC_DEFAULT", Material: event.MaterialRef{ID: fmt.Sprint(p)}}}}})
	}
	b.ResetTimer()
	for range b.N {
		if page, _ := s.KeysPage("111122223333", "k-10000", 1); len(page) != 1 {
			b.Fatal("empty page")
		}
	}
}
