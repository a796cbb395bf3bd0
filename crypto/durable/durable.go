// Package durable writes files so that they survive a crash or a power
// cut whole: WriteFile replaces a file atomically (a reader, or the next
// start after a crash, finds the old content or the new, never a torn
// file) and returns only once the new content and its name are on disk;
// SyncDir makes a change to a directory's entries (a created, renamed or
// removed file) durable.
//
// It sits under crypto/ because crypto is the layer every other may
// import and its sealed root key file is one of the files written this
// way; it imports only the standard library and holds no secrets itself
// (callers clear what they passed when it was one). Its functions are
// safe for concurrent use on different paths; two WriteFiles to one path
// race, and the last rename wins.
package durable

import (
	"os"
	"path/filepath"
)

// WriteFile replaces path with data, mode perm: it writes a temporary
// file in the same directory, fsyncs it, renames it over path and fsyncs
// the directory. On error path is unchanged and the temporary file is
// removed.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir fsyncs directory dir, making the files created, renamed or
// removed in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
