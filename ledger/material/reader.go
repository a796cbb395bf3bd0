package material

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/crypto/secret"
	"github.com/keyledger/keyledger/crypto/shred"
	"github.com/keyledger/keyledger/ledger/internal/jsretry"
)

// Reader reads the materials of a running deployment without changing
// anything: it creates and updates no stream (Open does both), repairs no
// slot (Open zeroes torn ones — on a live server's file that could be a slot
// being written), and writes nothing. It is what a backup reads with,
// under an identity that can only read. It is safe for concurrent use.
type Reader struct {
	kv   jetstream.KeyValue
	keys interface {
		Get(ctx context.Context, id string) (secret.Bytes, error)
	}
	slots *slotReader
}

// OpenReader opens the bucket of cfg, which must exist, and its
// per-material keys: the slot file in cfg.ShredDir, read-only (the
// embedded default, read beside its running server), or else the keys
// bucket, which must exist too.
func OpenReader(ctx context.Context, nc *nats.Conn, cfg Config) (*Reader, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = "keyledger-material"
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	kv, err := existingBucket(ctx, js, cfg.Bucket)
	if err != nil {
		return nil, err
	}
	r := &Reader{kv: kv}
	if cfg.ShredDir != "" {
		if r.slots, err = openSlotReader(cfg.ShredDir); err != nil {
			return nil, err
		}
		r.keys = r.slots
		return r, nil
	}
	kkv, err := existingBucket(ctx, js, cfg.Bucket+"-keys")
	if err != nil {
		return nil, fmt.Errorf("%w (the per-material keys of an embedded server are in its data directory's shred/, not on NATS)", err)
	}
	r.keys = bucketKeys{kv: kkv}
	return r, nil
}

func existingBucket(ctx context.Context, js jetstream.JetStream, bucket string) (jetstream.KeyValue, error) {
	kv, err := jsretry.Do(ctx, func(ctx context.Context) (jetstream.KeyValue, error) { return js.KeyValue(ctx, bucket) })
	if err != nil {
		return nil, fmt.Errorf("material: bucket %s: %w", bucket, err)
	}
	return kv, nil
}

// Get returns the root-wrapped material for id (ErrNotFound if there is
// none, or its per-material key is gone).
func (r *Reader) Get(ctx context.Context, id string) ([]byte, error) {
	e, err := r.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("material: get %s: %w", id, err)
	}
	stored := e.Value()
	if !shred.IsSealed(stored) {
		return stored, nil
	}
	key, err := r.keys.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	defer key.Clear()
	wrapped, err := shred.Open(key, id, stored)
	if err != nil {
		return nil, fmt.Errorf("material: get %s: %w", id, err)
	}
	return wrapped, nil
}

// Close closes the slot file, if any.
func (r *Reader) Close() error {
	if r.slots != nil {
		return r.slots.Close()
	}
	return nil
}

// slotReader reads the slot file (slots.go) of a running server, opened
// read-only. The server overwrites slots in place meanwhile, so a slot is
// found by scanning, read again before its key is used, and a slot that
// does not check out (being written, or reused for another material since
// the scan) is looked for again.
type slotReader struct {
	mu    sync.Mutex
	f     *os.File
	index map[string]int64
}

func openSlotReader(dir string) (*slotReader, error) {
	f, err := os.Open(filepath.Join(dir, slotsFile))
	if err != nil {
		return nil, fmt.Errorf("material: key slots: %w", err)
	}
	head := make([]byte, slotSize)
	if _, err := f.ReadAt(head, 0); err != nil || string(head[:len(slotHeader)]) != slotHeader || !slotValid(head) {
		f.Close()
		return nil, fmt.Errorf("material: key slots %s: not a key slot file (bad header)", f.Name())
	}
	return &slotReader{f: f, index: map[string]int64{}}, nil
}

// slotReadTries bounds how often a slot is looked for again while the
// server writes around it.
const slotReadTries = 3

func (s *slotReader) Get(_ context.Context, id string) (secret.Bytes, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := make([]byte, slotSize)
	defer clear(b)
	for range slotReadTries {
		slot, ok := s.index[id]
		if !ok {
			if err := s.scan(); err != nil {
				return secret.Bytes{}, err
			}
			if slot, ok = s.index[id]; !ok {
				return secret.Bytes{}, ErrNotFound
			}
		}
		if _, err := s.f.ReadAt(b, slot*slotSize); err != nil && !errors.Is(err, io.EOF) {
			return secret.Bytes{}, fmt.Errorf("material: reading key slot: %w", err)
		}
		if got, ok := parseSlot(b); ok && got == id {
			return secret.New(b[slotKeyAt : slotKeyAt+shred.KeySize]), nil
		}
		delete(s.index, id) // moved, destroyed or being written: look again
	}
	return secret.Bytes{}, fmt.Errorf("material: the key slot of %s keeps changing while it is read", id)
}

// scan indexes every valid live slot of the file as it is now.
func (s *slotReader) scan() error {
	data, err := io.ReadAll(io.NewSectionReader(s.f, 0, 1<<40))
	if err != nil {
		return fmt.Errorf("material: reading key slots: %w", err)
	}
	defer clear(data)
	clear(s.index)
	for slot := int64(1); (slot+1)*slotSize <= int64(len(data)); slot++ {
		if id, ok := parseSlot(data[slot*slotSize : (slot+1)*slotSize]); ok {
			s.index[id] = slot
		}
	}
	return nil
}

func (s *slotReader) Close() error { return s.f.Close() }
