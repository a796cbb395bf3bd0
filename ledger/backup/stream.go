package backup

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/keyledger/keyledger/crypto/durable"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
)

// foldBatch is how many records are handed to a Fold at once while
// streaming: enough to amortise its lock, small enough not to matter.
const foldBatch = 1024

// roots computes the RFC 6962 roots of the first n leaves for every n in
// want as leaves stream by, keeping only the compact range (one hash per
// set bit of the leaf count) and the roots asked for: memory logarithmic in
// the ledger, not linear.
type roots struct {
	n     int64
	stack []tlog.Hash // roots of perfect subtrees, largest first
	want  map[int64]bool
	at    map[int64]tlog.Hash
}

func newRoots(sizes ...int64) *roots {
	r := &roots{want: map[int64]bool{}, at: map[int64]tlog.Hash{}}
	for _, s := range sizes {
		r.want[s] = true
	}
	return r
}

func (r *roots) add(raw []byte) {
	h := tlog.RecordHash(raw)
	r.n++
	for m := r.n; m&1 == 0; m >>= 1 {
		h = tlog.NodeHash(r.stack[len(r.stack)-1], h)
		r.stack = r.stack[:len(r.stack)-1]
	}
	r.stack = append(r.stack, h)
	if r.want[r.n] {
		r.at[r.n] = r.root()
	}
}

// root is the root of the leaves so far (at least one).
func (r *roots) root() tlog.Hash {
	h := r.stack[len(r.stack)-1]
	for i := len(r.stack) - 2; i >= 0; i-- {
		h = tlog.NodeHash(r.stack[i], h)
	}
	return h
}

// rootAt is the root at a size asked for, once the stream passed it.
func (r *roots) rootAt(size int64) (tlog.Hash, error) {
	if h, ok := r.at[size]; ok {
		return h, nil
	}
	if size == r.n && size > 0 {
		return r.root(), nil
	}
	return tlog.Hash{}, merkle.ErrRange
}

// folder hands records to a Fold in batches as they stream by.
type folder struct {
	fold  Fold
	batch []event.Record
}

func (f *folder) add(r event.Record) {
	f.batch = append(f.batch, r)
	if len(f.batch) == foldBatch {
		f.flush()
	}
}

func (f *folder) flush() {
	if len(f.batch) > 0 {
		f.fold.Apply(f.batch)
		clear(f.batch) // drop references to the events' bytes
		f.batch = f.batch[:0]
	}
}

// hashedFile is a file being written, with its size and SHA-256 kept as
// it grows.
type hashedFile struct {
	path string // relative to the backup directory
	f    *os.File
	w    *bufio.Writer
	h    hash.Hash
	size int64
}

func createHashed(dir, path string) (*hashedFile, error) {
	full := filepath.Join(dir, path)
	if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	return &hashedFile{path: path, f: f, w: bufio.NewWriterSize(f, 1<<20), h: sha256.New()}, nil
}

func (hf *hashedFile) Write(p []byte) (int, error) {
	hf.h.Write(p)
	hf.size += int64(len(p))
	return hf.w.Write(p)
}

// writeLine writes p and a newline.
func (hf *hashedFile) writeLine(p []byte) error {
	if _, err := hf.Write(p); err != nil {
		return err
	}
	_, err := hf.Write([]byte{'\n'})
	return err
}

// close flushes, fsyncs and closes the file, and describes it.
func (hf *hashedFile) close() (File, error) {
	err := hf.w.Flush()
	if err == nil {
		err = hf.f.Sync()
	}
	if cerr := hf.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = durable.SyncDir(filepath.Dir(hf.f.Name()))
	}
	return File{Path: filepath.ToSlash(hf.path), Size: hf.size, SHA256: hex.EncodeToString(hf.h.Sum(nil))}, err
}

// lineReader reads a file one line at a time, hashing every byte read, so
// the file's digest is known when its content has been checked.
type lineReader struct {
	f    *os.File
	r    *bufio.Reader
	h    hash.Hash
	size int64
	line int // lines read so far
}

func openLines(path string) (*lineReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return &lineReader{f: f, r: bufio.NewReaderSize(f, 1<<20), h: sha256.New()}, nil
}

// next returns the next line without its newline, valid until the next
// call, or io.EOF. A last line without a newline is returned as a line.
func (lr *lineReader) next() ([]byte, error) {
	b, err := lr.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		// A line longer than the buffer: gather it.
		long := append([]byte(nil), b...)
		for errors.Is(err, bufio.ErrBufferFull) {
			b, err = lr.r.ReadSlice('\n')
			long = append(long, b...)
		}
		b = long
	}
	lr.h.Write(b)
	lr.size += int64(len(b))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if len(b) == 0 {
		return nil, io.EOF
	}
	lr.line++
	if b[len(b)-1] == '\n' {
		b = b[:len(b)-1]
	}
	return b, nil
}

// drain hashes the rest of the file (after a failure part-way, so a file
// that was changed is reported as such) and returns its size and digest.
func (lr *lineReader) drain() (int64, string, error) {
	n, err := io.Copy(lr.h, lr.r)
	lr.size += n
	return lr.size, hex.EncodeToString(lr.h.Sum(nil)), err
}

func (lr *lineReader) close() { lr.f.Close() }

// matches reports whether the whole file read so far is f.
func (lr *lineReader) matches(f File) (bool, error) {
	size, sum, err := lr.drain()
	return err == nil && size == f.Size && sum == f.SHA256, err
}

// eachLine calls fn with each of the first max lines of a file (valid
// until fn returns).
func eachLine(path string, max int64, fn func([]byte)) error {
	lr, err := openLines(path)
	if err != nil {
		return err
	}
	defer lr.close()
	for int64(lr.line) < max {
		b, err := lr.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		fn(b)
	}
	return nil
}
