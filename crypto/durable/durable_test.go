package durable_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/keyledger/keyledger/crypto/durable"
)

func TestWriteFileReplacesWholeWithMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	for _, content := range []string{"first version\n", "second\n"} {
		if err := durable.WriteFile(path, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("read %q (%v), want %q", got, err, content)
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
			t.Fatalf("mode %v, want 0640", fi.Mode().Perm())
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("%d entries in the directory, want only the file: a temporary file was left", len(entries))
	}
	if err := durable.SyncDir(dir); err != nil {
		t.Fatal(err)
	}
}

// A write that cannot complete leaves what was at the path as it was and
// no temporary file behind.
func TestFailedWriteLeavesNoTrace(t *testing.T) {
	dir := t.TempDir()
	// Renaming over a non-empty directory fails after the temporary file
	// was written and synced.
	path := filepath.Join(dir, "state")
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := durable.WriteFile(path, []byte("new"), 0o600); err == nil {
		t.Fatal("replacing a non-empty directory succeeded")
	}
	if fi, err := os.Stat(filepath.Join(path, "x")); err != nil || !fi.IsDir() {
		t.Fatalf("what was at the path changed: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("%d entries, want only the directory: a temporary file was left", len(entries))
	}
	if err := durable.WriteFile(filepath.Join(dir, "missing", "state"), []byte("x"), 0o600); err == nil {
		t.Fatal("writing into a missing directory succeeded")
	}
}
