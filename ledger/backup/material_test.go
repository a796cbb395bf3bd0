package backup

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyledger/keyledger/ledger/material"
)

// restorer records what RestoreMaterials puts back, and refuses as
// material.Store does.
type restorer struct {
	readable map[string]bool
	put      map[string][]byte
}

func (r *restorer) Restore(_ context.Context, id string, wrapped []byte, commitments ...string) error {
	ok := false
	for _, c := range commitments {
		ok = ok || c == material.Commitment(wrapped)
	}
	switch {
	case !ok:
		return material.ErrNotCommitted
	case r.readable[id]:
		return material.ErrReadable
	}
	r.put[id] = wrapped
	return nil
}

// TestRestoreMaterials: only bytes matching the ledger's commitment are put
// back; a readable material is left alone; one missing from the backup
// or holding other bytes is reported, not restored.
func TestRestoreMaterials(t *testing.T) {
	dir := t.TempDir()
	lines := []materialLine{{ID: "good", Wrapped: []byte("good bytes")}, {ID: "stale", Wrapped: []byte("old bytes")},
		{ID: "fine", Wrapped: []byte("fine bytes")}, {ID: "other", Wrapped: []byte("not wanted")}}
	f, err := os.Create(filepath.Join(dir, MaterialsFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		b, _ := json.Marshal(l)
		f.Write(append(b, '\n'))
	}
	f.Close()
	want := map[string][]string{
		"good":    {"newer", material.Commitment([]byte("good bytes"))}, // the previous commitment matches
		"stale":   {material.Commitment([]byte("new bytes"))},
		"fine":    {material.Commitment([]byte("fine bytes"))},
		"missing": {"x"},
	}
	r := &restorer{readable: map[string]bool{"fine": true}, put: map[string][]byte{}}
	out, err := RestoreMaterials(context.Background(), dir, r, want)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, o := range out {
		got[o.ID] = o.OK
	}
	if diff := cmp.Diff(map[string]bool{"good": true, "stale": false, "fine": true, "missing": false}, got); diff != "" {
		t.Fatalf("outcomes (-want +got):\n%s\n%+v", diff, out)
	}
	if diff := cmp.Diff(map[string][]byte{"good": []byte("good bytes")}, r.put); diff != "" {
		t.Fatalf("restored (-want +got):\n%s", diff)
	}
	if _, err := RestoreMaterials(context.Background(), t.TempDir(), r, want); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("no backup: %v", err)
	}
}
