package backup

import (
	"bufio"
	"container/heap"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/keyledger/keyledger/ledger/merkle"
)

// readAhead is how many stored checkpoints are read ahead of the event
// stream, so that one stored a little out of order (several instances
// checkpoint the same stream) is still checked in the same pass.
const readAhead = 256

// storedCheckpoint is a signed checkpoint that opened under the verifier
// key, with its position among the stored ones (from 1).
type storedCheckpoint struct {
	pos int
	cp  merkle.Checkpoint
}

// checkpointCheck checks stored checkpoints against a ledger streaming by:
// each one's root is compared with the compact Merkle range's root when
// the stream reaches its size. It holds only the checkpoints read ahead
// and not yet reached, plus those stored behind the stream (whose size it
// had already passed when they were read), which verifyLate checks in a
// second pass: memory bounded by read-ahead and disorder, not history.
type checkpointCheck struct {
	next    func() (storedCheckpoint, error) // io.EOF after the last
	eof     bool
	pending bySize
	late    []storedCheckpoint
	checked int
}

func newCheckpointCheck(next func() (storedCheckpoint, error)) *checkpointCheck {
	return &checkpointCheck{next: next}
}

// passed is called with the compact range after each leaf is added.
func (c *checkpointCheck) passed(acc *roots) error {
	for !c.eof && len(c.pending) < readAhead {
		if err := c.read(acc.n); err != nil {
			return err
		}
	}
	var root tlog.Hash
	for i := 0; len(c.pending) > 0 && c.pending[0].cp.Size == acc.n; i++ {
		if i == 0 {
			root = acc.root()
		}
		if err := c.compare(heap.Pop(&c.pending).(storedCheckpoint), root); err != nil {
			return err
		}
	}
	return nil
}

// read reads the next stored checkpoint, n leaves having been passed.
func (c *checkpointCheck) read(n int64) error {
	s, err := c.next()
	if errors.Is(err, io.EOF) {
		c.eof = true
		return nil
	}
	if err != nil {
		return err
	}
	if s.cp.Size < n {
		c.late = append(c.late, s)
	} else {
		heap.Push(&c.pending, s)
	}
	return nil
}

// finish reads the checkpoints left once the stream ended at acc.n leaves
// and checks those at its end; any beyond it fail.
func (c *checkpointCheck) finish(acc *roots) error {
	for !c.eof {
		if err := c.read(acc.n); err != nil {
			return err
		}
	}
	for len(c.pending) > 0 {
		s := heap.Pop(&c.pending).(storedCheckpoint)
		if s.cp.Size != acc.n || acc.n == 0 {
			return fmt.Errorf("checkpoint %d (size %d) covers more events than the ledger's %d", s.pos, s.cp.Size, acc.n)
		}
		if err := c.compare(s, acc.root()); err != nil {
			return err
		}
	}
	return nil
}

// verifyLate checks the checkpoints stored behind the stream, reading the
// events again with stream (which calls add with each event's bytes, in
// order) only if there are any. start makes the compact range the events
// continue (newRoots, or rootsFrom a base) asking for the roots at sizes.
func (c *checkpointCheck) verifyLate(start func(sizes ...int64) (*roots, error), stream func(add func(raw []byte)) error) error {
	if len(c.late) == 0 {
		return nil
	}
	sizes := make([]int64, len(c.late))
	for i, s := range c.late {
		sizes[i] = s.cp.Size
	}
	acc, err := start(sizes...)
	if err != nil {
		return err
	}
	if err := stream(acc.add); err != nil {
		return err
	}
	for _, s := range c.late {
		root, err := acc.rootAt(s.cp.Size)
		if err != nil {
			return fmt.Errorf("checkpoint %d (size %d): %v", s.pos, s.cp.Size, err)
		}
		if err := c.compare(s, root); err != nil {
			return err
		}
	}
	c.late = nil
	return nil
}

func (c *checkpointCheck) compare(s storedCheckpoint, root tlog.Hash) error {
	if root != s.cp.Root {
		return fmt.Errorf("checkpoint %d (size %d) does not match the ledger's Merkle root", s.pos, s.cp.Size)
	}
	c.checked++
	return nil
}

// bySize is a min-heap of checkpoints by size.
type bySize []storedCheckpoint

func (h bySize) Len() int           { return len(h) }
func (h bySize) Less(i, j int) bool { return h[i].cp.Size < h[j].cp.Size }
func (h bySize) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *bySize) Push(x any)        { *h = append(*h, x.(storedCheckpoint)) }
func (h *bySize) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// checkpointsWriter writes CheckpointsFile one checkpoint at a time: a
// JSON array of the signed notes (base64), byte for byte what
// json.Marshal of the whole [][]byte gives.
type checkpointsWriter struct {
	f *hashedFile
	n int
}

func createCheckpoints(dir string) (*checkpointsWriter, error) {
	f, err := createHashed(dir, CheckpointsFile)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write([]byte{'['}); err != nil {
		f.close()
		return nil, err
	}
	return &checkpointsWriter{f: f}, nil
}

func (w *checkpointsWriter) add(signed []byte) error {
	b, _ := json.Marshal(signed)
	if w.n > 0 {
		b = append([]byte{','}, b...)
	}
	w.n++
	_, err := w.f.Write(b)
	return err
}

func (w *checkpointsWriter) close() (File, error) {
	_, err := w.f.Write([]byte{']'})
	f, cerr := w.f.close()
	if err == nil {
		err = cerr
	}
	return f, err
}

// checkpointsReader reads CheckpointsFile one checkpoint at a time,
// hashing every byte read so the file's digest can be checked at the end.
type checkpointsReader struct {
	file *os.File
	h    hash.Hash
	cr   *countingReader
	dec  *json.Decoder
	pos  int // checkpoints read
	null bool
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func openCheckpoints(path string) (*checkpointsReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	cr := &countingReader{r: io.TeeReader(bufio.NewReaderSize(f, 64<<10), h)}
	r := &checkpointsReader{file: f, h: h, cr: cr, dec: json.NewDecoder(cr)}
	tok, err := r.dec.Token()
	switch {
	case err != nil:
		f.Close()
		return nil, err
	case tok == nil: // null: no checkpoints
		r.null = true
	case tok != json.Delim('['):
		f.Close()
		return nil, errors.New("not a JSON array")
	}
	return r, nil
}

// next returns the next signed checkpoint, or io.EOF after the last.
func (r *checkpointsReader) next() ([]byte, error) {
	if r.null || !r.dec.More() {
		if !r.null {
			if _, err := r.dec.Token(); err != nil { // the closing ]
				return nil, err
			}
		}
		if _, err := r.dec.Token(); !errors.Is(err, io.EOF) {
			return nil, errors.New("data after the array")
		}
		return nil, io.EOF
	}
	var s []byte
	if err := r.dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("checkpoint %d: %v", r.pos+1, err)
	}
	r.pos++
	return s, nil
}

// matches hashes the rest of the file and reports whether all of it is f.
func (r *checkpointsReader) matches(f File) (bool, error) {
	if _, err := io.Copy(io.Discard, r.cr); err != nil {
		return false, err
	}
	return r.cr.n == f.Size && hex.EncodeToString(r.h.Sum(nil)) == f.SHA256, nil
}

func (r *checkpointsReader) close() { r.file.Close() }
