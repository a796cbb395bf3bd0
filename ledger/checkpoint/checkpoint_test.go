package checkpoint_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/keyledger/keyledger/ledger/checkpoint"
	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/ledger/merkle"
)

func leaf(i int) []byte { return fmt.Appendf(nil, `{"index":%d}`, i) }

// A ledger extends every checkpoint of a prefix of itself; a checkpoint of
// more events is a truncation, one with another root a rewrite.
func TestCheckExtends(t *testing.T) {
	var tree merkle.Tree
	for i := range 37 {
		if err := tree.Append(leaf(i)); err != nil {
			t.Fatal(err)
		}
	}
	root := func(size int64) tlog.Hash {
		h, err := tree.Root(size)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	for _, tc := range []struct {
		name      string
		cp        merkle.Checkpoint
		mismatch  bool
		truncated bool
	}{
		{"the whole ledger", merkle.Checkpoint{Size: 37, Root: root(37)}, false, false},
		{"a prefix", merkle.Checkpoint{Size: 20, Root: root(20)}, false, false},
		{"one event", merkle.Checkpoint{Size: 1, Root: root(1)}, false, false},
		{"more events than the ledger holds", merkle.Checkpoint{Size: 42, Root: root(37)}, true, true},
		{"another root", merkle.Checkpoint{Size: 20, Root: tlog.Hash{1}}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkpoint.CheckExtends(tc.cp, tree.Size(), tree.Root)
			var m *checkpoint.MismatchError
			if got := errors.As(err, &m); got != tc.mismatch {
				t.Fatalf("CheckExtends: %v, want a mismatch: %v", err, tc.mismatch)
			}
			if tc.mismatch && m.Truncated() != tc.truncated {
				t.Fatalf("Truncated() = %v, want %v (%v)", m.Truncated(), tc.truncated, err)
			}
		})
	}
}

// The Checkpointer signs only a tree that grew, stores its tiles first,
// and Newest takes the newest checkpoint its key verifies, skipping one
// signed with another key.
func TestCheckpointerAndStore(t *testing.T) {
	srv, err := embedded.Start(embedded.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx := context.Background()

	if _, err := checkpoint.OpenExisting(ctx, nc, ""); !errors.Is(err, checkpoint.ErrNone) {
		t.Fatalf("OpenExisting before any checkpoint stream: %v, want ErrNone", err)
	}
	store, err := checkpoint.Open(ctx, nc, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Latest(ctx); !errors.Is(err, checkpoint.ErrNone) {
		t.Fatalf("Latest on an empty store: %v, want ErrNone", err)
	}
	tiles, err := checkpoint.OpenTiles(ctx, nc, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tiles.ReadTile(ctx, 0, 0); !errors.Is(err, merkle.ErrTileNotFound) {
		t.Fatalf("ReadTile before any is stored: %v, want merkle.ErrTileNotFound", err)
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, "test")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	tree := merkle.New(tiles, 4)
	cpr := checkpoint.NewCheckpointer(checkpoint.Config{Tree: tree, Store: store, Signer: signer, Verifier: vkey, Origin: "test",
		Writers: func() map[string]string { return map[string]string{"w1": "cHVi"} }})
	if _, err := cpr.Checkpoint(ctx); err == nil {
		t.Fatal("a checkpoint of an empty tree was signed")
	}
	for i := range 300 { // more than one full tile (256 leaves)
		if err := tree.Append(leaf(i)); err != nil {
			t.Fatal(err)
		}
	}
	first, err := cpr.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tiles.ReadTile(ctx, 0, 0); err != nil {
		t.Fatalf("the full tile under the checkpoint was not stored before it was signed: %v", err)
	}
	if again, err := cpr.Checkpoint(ctx); err != nil || string(again) != string(first) {
		t.Fatalf("Checkpoint of an unchanged tree: %v, want the stored one again", err)
	}
	if n, err := store.Count(ctx); err != nil || n != 1 {
		t.Fatalf("stored %d checkpoints (%v), want 1: an unchanged tree is not signed again", n, err)
	}
	cp, err := merkle.Open(first, vkey)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := tree.Root(300); cp.Size != 300 || cp.Root != want || cp.Writers()["w1"] != "cHVi" {
		t.Fatalf("checkpoint %+v: want size 300, the tree's root and writer w1", cp)
	}

	// A newer checkpoint signed with another key is skipped by Newest with
	// this instance's key, and taken (unverified) without one.
	otherKey, _, _ := note.GenerateKey(rand.Reader, "test")
	other, _ := note.NewSigner(otherKey)
	forged, err := merkle.Sign(merkle.Checkpoint{Origin: "test", Size: 1000, Root: tlog.Hash{9}}, other)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Put(ctx, forged); err != nil {
		t.Fatal(err)
	}
	got, skipped, err := store.Newest(ctx, vkey)
	if err != nil || skipped != 1 || got.Size != 300 {
		t.Fatalf("Newest with the key: size %d, skipped %d, %v; want size 300, 1 skipped", got.Size, skipped, err)
	}
	if got, _, err := store.Newest(ctx, ""); err != nil || got.Size != 1000 {
		t.Fatalf("Newest without a key: size %d, %v; want the newest stored (1000)", got.Size, err)
	}
	ro, err := checkpoint.OpenExisting(ctx, nc, "")
	if err != nil {
		t.Fatal(err)
	}
	all, err := ro.All(ctx)
	if err != nil || len(all) != 2 || string(all[0]) != string(first) || string(all[1]) != string(forged) {
		t.Fatalf("All: %d checkpoints (%v), want the two stored, oldest first", len(all), err)
	}
	if newest, stored, err := cpr.Newest(ctx); err != nil || stored != 2 || string(newest) != string(forged) {
		t.Fatalf("Checkpointer.Newest: %d stored (%v), want 2 and the newest", stored, err)
	}
}

// The store thins: every checkpoint of the recent window, then one per
// Every and those kept on purpose. Age removes recent checkpoints though
// the streams deny deletes; the newest stays readable, and Reader merges
// the two streams by size.
func TestStoreThins(t *testing.T) {
	srv, err := embedded.Start(embedded.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx := context.Background()
	skey, vkey, _ := note.GenerateKey(rand.Reader, "test")
	signer, _ := note.NewSigner(skey)
	signed := func(size int64) []byte {
		b, err := merkle.Sign(merkle.Checkpoint{Origin: "test", Size: size, Root: tlog.Hash{byte(size)}}, signer)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	sizes := func(s *checkpoint.Store) []int64 {
		all, err := s.All(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, b := range all {
			cp, err := merkle.Open(b, vkey)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, cp.Size)
		}
		return out
	}
	thin := checkpoint.Thinning{Recent: time.Second, Every: time.Hour}
	store, err := checkpoint.OpenThinned(ctx, nc, "", 0, thin)
	if err != nil {
		t.Fatal(err)
	}
	for size := int64(1); size <= 5; size++ { // the first is kept: none was
		if err := store.Put(ctx, signed(size)); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.Keep(ctx, signed(6)); err != nil {
		t.Fatal(err)
	}
	if err := store.Put(ctx, signed(7)); err != nil {
		t.Fatal(err)
	}
	if got := sizes(store); !slices.Equal(got, []int64{1, 2, 3, 4, 5, 6, 7}) {
		t.Fatalf("stored %v", got)
	}
	// The recent window passes: 2–5 and 7 age out, though deletes are denied.
	deadline := time.Now().Add(10 * time.Second)
	for n, _ := store.Count(ctx); n != 2; n, _ = store.Count(ctx) {
		if time.Now().After(deadline) {
			t.Fatalf("%d checkpoints stored after the window, want 2 (the kept ones)", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := sizes(store); !slices.Equal(got, []int64{1, 6}) {
		t.Fatalf("kept %v, want [1 6]", got)
	}
	if cp, _, err := store.Newest(ctx, vkey); err != nil || cp.Size != 6 {
		t.Fatalf("Newest = %d, %v; want 6", cp.Size, err)
	}
	ro, err := checkpoint.OpenExisting(ctx, nc, "")
	if err != nil {
		t.Fatal(err)
	}
	if latest, err := ro.Latest(ctx); err != nil || sizeOf(t, latest, vkey) != 6 {
		t.Fatalf("Latest read-only: %v", err)
	}

	// Once Every has passed since the last kept one, the next is kept.
	store, err = checkpoint.OpenThinned(ctx, nc, "", 0, checkpoint.Thinning{Recent: time.Second, Every: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(250 * time.Millisecond)
	if err := store.Put(ctx, signed(8)); err != nil {
		t.Fatal(err)
	}
	if err := store.Put(ctx, signed(9)); err != nil {
		t.Fatal(err)
	}
	for n, _ := store.Count(ctx); n != 3; n, _ = store.Count(ctx) {
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatalf("%d checkpoints stored, want 3 (9 ages out, 8 is kept)", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := sizes(store); !slices.Equal(got, []int64{1, 6, 8}) {
		t.Fatalf("kept %v, want [1 6 8]", got)
	}
}

func sizeOf(t *testing.T, signed []byte, vkey string) int64 {
	t.Helper()
	cp, err := merkle.Open(signed, vkey)
	if err != nil {
		t.Fatal(err)
	}
	return cp.Size
}
