package material

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
)

func TestStoreRewrap(t *testing.T) {
	for _, mode := range []string{"slot file", "bucket"} {
		t.Run(mode, func(t *testing.T) {
			dir := ""
			if mode == "slot file" {
				dir = t.TempDir()
			}
			s := openStore(t, dir)
			ctx := context.Background()
			if ids, err := s.IDs(ctx); err != nil || len(ids) != 0 {
				t.Fatalf("empty store lists %v, %v", ids, err)
			}
			for _, id := range []string{"m1", "m2"} {
				if err := s.Put(ctx, id, []byte("old-"+id)); err != nil {
					t.Fatal(err)
				}
			}
			ids, err := s.IDs(ctx)
			slices.Sort(ids)
			if err != nil || !slices.Equal(ids, []string{"m1", "m2"}) {
				t.Fatalf("ids %v, %v", ids, err)
			}
			old, err := s.GetStored(ctx, "m1")
			if err != nil || string(old.Wrapped) != "old-m1" {
				t.Fatalf("get stored: %q %v", old.Wrapped, err)
			}
			if err := s.Rewrap(ctx, "m1", old, []byte("new-m1")); err != nil {
				t.Fatal(err)
			}
			if got, _ := s.Get(ctx, "m1"); !bytes.Equal(got, []byte("new-m1")) {
				t.Fatalf("after rewrap: %q", got)
			}
			// A second rewrap from the stale revision changes nothing.
			if err := s.Rewrap(ctx, "m1", old, []byte("stale")); !errors.Is(err, ErrChanged) {
				t.Fatalf("stale rewrap: %v", err)
			}
			// Material destroyed between read and rewrap stays destroyed.
			old2, _ := s.GetStored(ctx, "m2")
			if err := s.Destroy(ctx, "m2"); err != nil {
				t.Fatal(err)
			}
			if err := s.Rewrap(ctx, "m2", old2, []byte("new-m2")); !errors.Is(err, ErrChanged) {
				t.Fatalf("rewrap of destroyed material: %v", err)
			}
			if _, err := s.Get(ctx, "m2"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("destroyed material came back: %v", err)
			}
		})
	}
}
