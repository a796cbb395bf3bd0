package backup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/segment"
)

// testLog is a ledger of n leaves with the roots of every prefix computed
// independently of roots (tlog's stored-hash algorithm).
type testLog struct {
	leaves [][]byte
	hashes []tlog.Hash
}

func newTestLog(t *testing.T, n int) *testLog {
	l := &testLog{}
	for i := range n {
		leaf := fmt.Appendf(nil, "event %d", i)
		hs, err := tlog.StoredHashes(int64(i), leaf, tlog.HashReaderFunc(l.read))
		if err != nil {
			t.Fatal(err)
		}
		l.leaves, l.hashes = append(l.leaves, leaf), append(l.hashes, hs...)
	}
	return l
}

func (l *testLog) read(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = l.hashes[x]
	}
	return out, nil
}

func (l *testLog) root(t *testing.T, size int64) tlog.Hash {
	h, err := tlog.TreeHash(size, tlog.HashReaderFunc(l.read))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// checkAll streams the log's leaves past a checkpointCheck of cps, as
// Open and Write do, and returns the first error.
func (l *testLog) checkAll(cps []storedCheckpoint) error {
	i := 0
	check := newCheckpointCheck(func() (storedCheckpoint, error) {
		if i == len(cps) {
			return storedCheckpoint{}, io.EOF
		}
		i++
		return cps[i-1], nil
	})
	acc := newRoots()
	for _, leaf := range l.leaves {
		acc.add(leaf)
		if err := check.passed(acc); err != nil {
			return err
		}
		if len(check.pending) > readAhead {
			return fmt.Errorf("%d checkpoints held ahead of the stream, more than %d", len(check.pending), readAhead)
		}
	}
	if err := check.finish(acc); err != nil {
		return err
	}
	err := check.verifyLate(rootsAt(segment.Base{}), func(add func([]byte)) error {
		for _, leaf := range l.leaves {
			add(leaf)
		}
		return nil
	})
	if err == nil && check.checked != len(cps) {
		return fmt.Errorf("%d of %d checkpoints checked", check.checked, len(cps))
	}
	return err
}

func TestCheckpointCheck(t *testing.T) {
	const n = 2000
	l := newTestLog(t, n)
	at := func(pos int, size int64) storedCheckpoint {
		return storedCheckpoint{pos: pos, cp: merkle.Checkpoint{Size: size, Root: l.root(t, size)}}
	}
	// inOrder is one checkpoint every 5 leaves: 400, more than the
	// read-ahead, which bounds how many are held.
	var inOrder []storedCheckpoint
	for s := int64(5); s <= n; s += 5 {
		inOrder = append(inOrder, at(len(inOrder)+1, s))
	}
	// shuffled stores a late one far behind the stream (past the
	// read-ahead) and neighbours swapped, as concurrent writers would.
	shuffled := append([]storedCheckpoint(nil), inOrder...)
	shuffled = append(shuffled, at(len(shuffled)+1, 3))
	shuffled[10], shuffled[11] = shuffled[11], shuffled[10]
	wrong := append([]storedCheckpoint(nil), inOrder...)
	wrong[300].cp.Root = l.root(t, 7)
	wrongLate := append([]storedCheckpoint(nil), shuffled...)
	wrongLate[len(wrongLate)-1].cp.Root = l.root(t, 4)

	for _, tc := range []struct {
		name string
		cps  []storedCheckpoint
		want string // in the error; "" for none
	}{
		{"none", nil, ""},
		{"in order", inOrder, ""},
		{"duplicates at one size", []storedCheckpoint{at(1, 10), at(2, 10), at(3, n)}, ""},
		{"out of order and late", shuffled, ""},
		{"a wrong root", wrong, "checkpoint 301 (size 1505) does not match"},
		{"a wrong root, stored late", wrongLate, "does not match"},
		{"beyond the ledger", []storedCheckpoint{at(1, 10), {pos: 2, cp: merkle.Checkpoint{Size: n + 1}}}, "covers more events"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := l.checkAll(tc.cps)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}

// TestCheckpointsFile writes checkpoints one at a time and reads them back
// the same way; the file is byte for byte what json.Marshal of them all
// gives (the format backups always had), and the old "null" for none
// still reads.
func TestCheckpointsFile(t *testing.T) {
	skey, _, err := note.GenerateKey(nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	for _, count := range []int{0, 1, 3} {
		t.Run(fmt.Sprint(count), func(t *testing.T) {
			dir := t.TempDir()
			var want [][]byte
			w, err := createCheckpoints(dir)
			if err != nil {
				t.Fatal(err)
			}
			for i := range count {
				s, err := merkle.Sign(merkle.Checkpoint{Origin: "test", Size: int64(i + 1)}, signer)
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, s)
				if err := w.add(s); err != nil {
					t.Fatal(err)
				}
			}
			f, err := w.close()
			if err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(filepath.Join(dir, CheckpointsFile))
			whole, _ := json.Marshal(want)
			if want == nil {
				whole = []byte("[]")
			}
			if diff := cmp.Diff(string(whole), string(data)); diff != "" {
				t.Fatalf("file (-json.Marshal +written):\n%s", diff)
			}
			if f.Size != int64(len(data)) || f.SHA256 != digest(data) {
				t.Fatalf("described as %+v", f)
			}
			if diff := cmp.Diff(want, readCheckpointsFile(t, filepath.Join(dir, CheckpointsFile), f)); diff != "" {
				t.Fatalf("read back (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("null", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), CheckpointsFile)
		os.WriteFile(p, []byte("null"), 0o600)
		if got := readCheckpointsFile(t, p, File{Size: 4, SHA256: digest([]byte("null"))}); got != nil {
			t.Fatalf("read %q", got)
		}
	})
	t.Run("not an array", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), CheckpointsFile)
		os.WriteFile(p, []byte(`{"a":1}`), 0o600)
		if _, err := openCheckpoints(p); err == nil {
			t.Fatal("an object opened as checkpoints")
		}
	})
	t.Run("data after the array", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), CheckpointsFile)
		os.WriteFile(p, []byte(`[] []`), 0o600)
		r, err := openCheckpoints(p)
		if err != nil {
			t.Fatal(err)
		}
		defer r.close()
		if _, err := r.next(); err == nil || errors.Is(err, io.EOF) {
			t.Fatalf("next: %v, want an error", err)
		}
	})
}

func readCheckpointsFile(t *testing.T, path string, f File) [][]byte {
	t.Helper()
	r, err := openCheckpoints(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	var got [][]byte
	for {
		s, err := r.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	if ok, err := r.matches(f); err != nil || !ok {
		t.Fatalf("digest does not match after reading: %v", err)
	}
	return got
}
