package material

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/crypto/secret"
	"github.com/keyledger/keyledger/crypto/shred"
	"github.com/keyledger/keyledger/ledger/internal/jsretry"
)

// Reader reads the materials of a running deployment without changing
// anything: it creates and updates no stream (Open does both), repairs no
// slot or copy (Open zeroes torn slots — on a live server's file that could
// be a slot being written — and rewrites damaged copies), and writes
// nothing. It reads both copies of every part (see Two copies) and takes
// the first pair that opens, so one damaged copy costs a backup nothing. It
// is what a backup reads with, under an identity that can only read. It is
// safe for concurrent use.
type Reader struct {
	kv   [2]jetstream.KeyValue
	keys [2]interface {
		Get(ctx context.Context, id string) (secret.Bytes, error)
	}
	slots [2]*slotReader
}

// OpenReader opens the bucket of cfg, which must exist, its copy (if
// there is one: deployments from before copies have none), and the
// per-material keys: the slot files in cfg.ShredDir, read-only (the
// embedded default, read beside its running server), or else the keys
// bucket, which must exist too, and its copy.
func OpenReader(ctx context.Context, nc *nats.Conn, cfg Config) (*Reader, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBucket
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	r := &Reader{}
	if r.kv[0], err = existingBucket(ctx, js, cfg.Bucket); err != nil {
		return nil, err
	}
	if r.kv[1], err = optionalBucket(ctx, js, cfg.Bucket+CopySuffix); err != nil {
		return nil, err
	}
	if cfg.ShredDir != "" {
		for i, name := range []string{slotsFile, copySlotsFile} {
			sr, err := openSlotReader(cfg.ShredDir, name)
			if errors.Is(err, os.ErrNotExist) && i == 1 {
				r.keys[i] = noKeys{}
				continue
			}
			if err != nil {
				r.Close()
				return nil, err
			}
			r.slots[i], r.keys[i] = sr, sr
		}
		return r, nil
	}
	kkv, err := existingBucket(ctx, js, cfg.Bucket+"-keys")
	if err != nil {
		return nil, fmt.Errorf("%w (the per-material keys of an embedded server are in its data directory's shred/, not on NATS)", err)
	}
	ckv, err := optionalBucket(ctx, js, cfg.Bucket+"-keys"+CopySuffix)
	if err != nil {
		return nil, err
	}
	r.keys[0], r.keys[1] = bucketKeys{kv: kkv}, bucketKeys{kv: ckv}
	return r, nil
}

func existingBucket(ctx context.Context, js jetstream.JetStream, bucket string) (jetstream.KeyValue, error) {
	kv, err := jsretry.Do(ctx, func(ctx context.Context) (jetstream.KeyValue, error) { return js.KeyValue(ctx, bucket) })
	if err != nil {
		return nil, fmt.Errorf("material: bucket %s: %w", bucket, err)
	}
	return kv, nil
}

// optionalBucket is existingBucket for a bucket that may not exist (a
// second copy, before copies): then every key is missing from it.
func optionalBucket(ctx context.Context, js jetstream.JetStream, bucket string) (jetstream.KeyValue, error) {
	kv, err := existingBucket(ctx, js, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return missingBucket{}, nil
	}
	return kv, err
}

// noKeys is a key store that holds nothing (a missing second slot file).
type noKeys struct{}

func (noKeys) Get(context.Context, string) (secret.Bytes, error) { return secret.Bytes{}, ErrNotFound }

// Get returns the root-wrapped material for id from the first copy that
// opens: ErrNotFound if no copy holds it (or its per-material keys are
// gone), an *UnreadableError if one does but none opens.
func (r *Reader) Get(ctx context.Context, id string) ([]byte, error) {
	return r.GetChecked(ctx, id)
}

// GetChecked is Get that accepts only root-wrapped bytes whose Commitment
// is one of commitments (any, when none are given), so a copy holding
// other bytes is passed over for one that matches.
func (r *Reader) GetChecked(ctx context.Context, id string, commitments ...string) ([]byte, error) {
	var (
		keys   [2]secret.Bytes
		keyErr [2]error
		entErr [2]error
		stored [2][]byte
	)
	for i := range 2 {
		keys[i], keyErr[i] = r.keys[i].Get(ctx, id)
		e, err := r.kv[i].Get(ctx, id)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
			entErr[i] = ErrNotFound
		case err != nil:
			entErr[i] = fmt.Errorf("material: get %s: %w", id, err)
		default:
			stored[i] = e.Value()
		}
	}
	defer func() {
		for _, k := range keys {
			k.Clear()
		}
	}()
	accept := func(wrapped []byte) bool {
		return len(commitments) == 0 || slices.Contains(commitments, Commitment(wrapped))
	}
	opened := [2]bool{}
	for c := range 2 {
		if entErr[c] != nil {
			continue
		}
		if !shred.IsSealed(stored[c]) { // version 1: the root wrap itself
			opened[c] = true
			if accept(stored[c]) {
				return stored[c], nil
			}
			continue
		}
		for k := range 2 {
			if keyErr[k] != nil {
				continue
			}
			if w, err := shred.Open(keys[k], id, stored[c]); err == nil {
				opened[c] = true
				if accept(w) {
					return w, nil
				}
			}
		}
	}
	return nil, unreadable(keyErr, entErr, opened, describe(id, keyErr, entErr, opened, commitments))
}

// Close closes the slot files, if any.
func (r *Reader) Close() error {
	var first error
	for _, sr := range r.slots {
		if sr != nil {
			if err := sr.Close(); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// slotReader reads the slot file (slots.go) of a running server, opened
// read-only. The server overwrites slots in place meanwhile, so a slot is
// found by scanning, read again before its key is used, and a slot that
// does not check out (being written, or reused for another material since
// the scan) is looked for again.
type slotReader struct {
	mu      sync.Mutex
	f       *os.File
	index   map[string]int64
	damaged map[string]bool // materials a slot failing its checksum still names
}

func openSlotReader(dir, name string) (*slotReader, error) {
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return nil, fmt.Errorf("material: key slots: %w", err)
	}
	head := make([]byte, slotSize)
	if _, err := f.ReadAt(head, 0); err != nil || string(head[:len(slotHeader)]) != slotHeader || !slotValid(head) {
		f.Close()
		return nil, fmt.Errorf("material: key slots %s: not a key slot file (bad header)", f.Name())
	}
	return &slotReader{f: f, index: map[string]int64{}, damaged: map[string]bool{}}, nil
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
				if s.damaged[id] {
					return secret.Bytes{}, errSlotBroken
				}
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
	clear(s.damaged)
	for slot := int64(1); (slot+1)*slotSize <= int64(len(data)); slot++ {
		b := data[slot*slotSize : (slot+1)*slotSize]
		if id, ok := parseSlot(b); ok {
			s.index[id] = slot
		} else if id := legibleID(b); id != "" {
			// Damaged, or being written by the server as it is read: not
			// a deletion either way (a destroyed slot is all zeros).
			s.damaged[id] = true
		}
	}
	return nil
}

func (s *slotReader) Close() error { return s.f.Close() }
