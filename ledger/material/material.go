package material

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/crypto/secret"
	"github.com/keyledger/keyledger/crypto/shred"
	"github.com/keyledger/keyledger/ledger/internal/jsretry"
)

// ErrNotFound means the material does not exist or was destroyed.
var ErrNotFound = errors.New("material: not found")

// Config names the bucket and where per-material keys live.
type Config struct {
	Bucket   string // default "keyledger-material"
	Replicas int    // default 1
	// ShredDir is the directory of the per-material key slot file. Empty
	// means per-material keys live in the bucket <Bucket>-keys instead
	// (external deployments, where instances share them).
	ShredDir string
	// Storage, when set, is checked before every write, and a write it
	// reports failed stops waiting for the server's answer (the embedded
	// server's disk; see ledger.Storage).
	Storage interface {
		CheckWrite(n int) error
		WriteFault() context.Context
	}
}

// Store holds wrapped key material.
type Store struct {
	kv     jetstream.KeyValue
	stream jetstream.Stream
	keys   keyStore
	slots  *slotFile // == keys on the embedded default, else nil
	cfg    Config

	repaired int
}

// keyStore keeps per-material keys.
type keyStore interface {
	Create(ctx context.Context, id string) (secret.Bytes, error)
	Get(ctx context.Context, id string) (secret.Bytes, error) // ErrNotFound once destroyed
	Destroy(ctx context.Context, id string) error             // idempotent
	Close() error
}

// Open creates or opens the bucket and the per-material key store.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = "keyledger-material"
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	kv, stream, err := openBucket(ctx, js, cfg.Bucket, cfg.Replicas,
		"keyledger: key material wrapped under the root key and a per-material key (deletable)")
	if err != nil {
		return nil, err
	}
	s := &Store{kv: kv, stream: stream, cfg: cfg}
	if cfg.ShredDir != "" {
		if s.slots, s.repaired, err = openSlots(cfg.ShredDir); err != nil {
			return nil, err
		}
		s.keys = slotKeys{s.slots}
		return s, nil
	}
	kkv, kstream, err := openBucket(ctx, js, cfg.Bucket+"-keys", cfg.Replicas,
		"keyledger: per-material keys (erased to destroy material)")
	if err != nil {
		return nil, err
	}
	s.keys = bucketKeys{kv: kkv, stream: kstream}
	return s, nil
}

// RepairedSlots is how many torn key slots Open zeroed (a crash tore a
// write).
func (s *Store) RepairedSlots() int { return s.repaired }

// openBucket makes the bucket's stream itself rather than through
// CreateKeyValue, which denies message deletes for good; destroying needs
// them.
func openBucket(ctx context.Context, js jetstream.JetStream, bucket string, replicas int, desc string) (jetstream.KeyValue, jetstream.Stream, error) {
	stream, err := jsretry.Do(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:              "KV_" + bucket,
			Description:       desc,
			Subjects:          []string{"$KV." + bucket + ".>"},
			MaxMsgsPerSubject: 1,
			Discard:           jetstream.DiscardNew,
			AllowRollup:       true,
			AllowDirect:       true,
			Storage:           jetstream.FileStorage,
			Replicas:          replicas,
			Duplicates:        2 * time.Minute,
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("material: bucket %s: %w", bucket, err)
	}
	kv, err := jsretry.Do(ctx, func(ctx context.Context) (jetstream.KeyValue, error) { return js.KeyValue(ctx, bucket) })
	if err != nil {
		return nil, nil, fmt.Errorf("material: bucket %s: %w", bucket, err)
	}
	return kv, stream, nil
}

// Commitment is what the ledger records for a wrapped material: the hex
// SHA-256 of its root-wrapped bytes.
func Commitment(wrapped []byte) string {
	h := sha256.Sum256(wrapped)
	return hex.EncodeToString(h[:])
}

// Put stores new root-wrapped material under id, sealed under a new
// per-material key that is durable before Put returns; an existing id is
// an error.
func (s *Store) Put(ctx context.Context, id string, wrapped []byte) error {
	var fault context.Context
	if st := s.cfg.Storage; st != nil {
		if err := st.CheckWrite(len(wrapped) + 1024); err != nil {
			return fmt.Errorf("material: put %s: %w", id, err)
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		fault = st.WriteFault()
		defer context.AfterFunc(fault, cancel)()
	}
	err := s.put(ctx, id, wrapped)
	if err != nil && fault != nil && fault.Err() != nil {
		return fmt.Errorf("material: put %s: %w", id, context.Cause(fault))
	}
	return err
}

func (s *Store) put(ctx context.Context, id string, wrapped []byte) error {
	key, err := s.keys.Create(ctx, id)
	if errors.Is(err, errSlotExists) || errors.Is(err, jetstream.ErrKeyExists) {
		// A key left by a destroyed or never-committed material of the same
		// id (imported material keeps its id): replace it unless live.
		if live, lerr := s.Exists(ctx, id); lerr != nil || live {
			return fmt.Errorf("material: put %s: already stored", id)
		}
		if err = s.keys.Destroy(ctx, id); err == nil {
			key, err = s.keys.Create(ctx, id)
		}
	}
	if err != nil {
		return fmt.Errorf("material: put %s: %w", id, err)
	}
	sealed := shred.Seal(key, id, wrapped)
	key.Clear()
	if _, err := s.kv.Create(ctx, id, sealed); err != nil {
		_ = s.keys.Destroy(ctx, id) // Reclaim retries after a crash
		return fmt.Errorf("material: put %s: %w", id, err)
	}
	return nil
}

// Get returns the root-wrapped material for id.
func (s *Store) Get(ctx context.Context, id string) ([]byte, error) {
	e, err := s.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("material: get %s: %w", id, err)
	}
	stored := e.Value()
	if !shred.IsSealed(stored) {
		return stored, nil // version 1: wrapped under the root key only
	}
	key, err := s.keys.Get(ctx, id)
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

// Destroy destroys the material for id: first its per-material key
// (overwritten and fsynced on the embedded default), then the sealed bytes
// (JetStream secure delete, defence in depth). Destroying missing material
// is not an error, so it can be retried after a crash.
func (s *Store) Destroy(ctx context.Context, id string) error {
	if err := s.keys.Destroy(ctx, id); err != nil {
		return fmt.Errorf("material: destroy %s: %w", id, err)
	}
	return eraseEntry(ctx, s.kv, s.stream, id)
}

// eraseEntry securely deletes id's message from a bucket and purges the key.
func eraseEntry(ctx context.Context, kv jetstream.KeyValue, stream jetstream.Stream, id string) error {
	e, err := kv.Get(ctx, id)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		return nil
	case err != nil:
		return fmt.Errorf("material: destroy %s: %w", id, err)
	}
	if err := stream.SecureDeleteMsg(ctx, e.Revision()); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("material: erase %s: %w", id, err)
	}
	if err := kv.Purge(ctx, id); err != nil {
		return fmt.Errorf("material: purge %s: %w", id, err)
	}
	return nil
}

// Exists reports whether live material is stored under id.
func (s *Store) Exists(ctx context.Context, id string) (bool, error) {
	_, err := s.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// MaxReclaim bounds how many unreferenced per-material keys Reclaim
// destroys at once. A crash leaves at most the materials then being
// created; many more means the ledger lost events (truncation), and
// destroying their keys would make that loss permanent.
const MaxReclaim = 64

// ErrTooManyOrphans is Reclaim's refusal; nothing was destroyed.
var ErrTooManyOrphans = errors.New("material: more unreferenced key slots than a crash can leave; the ledger may be missing events")

// Reclaim destroys every material whose per-material key slot exists but
// which live does not report: materials a crash left between Put and the
// ledger commit, or destroyed ones whose destruction was cut short. It
// returns the ids destroyed. Call it at start-up, after replaying the
// ledger and before serving. With keys in a shared bucket (external
// deployments) it does nothing: another instance may be between its Put
// and its commit.
func (s *Store) Reclaim(ctx context.Context, live func(id string) bool) ([]string, error) {
	if s.slots == nil {
		return nil, nil
	}
	var orphans []string
	for _, id := range s.slots.IDs() {
		if !live(id) {
			orphans = append(orphans, id)
		}
	}
	if len(orphans) > MaxReclaim {
		return nil, fmt.Errorf("%w (%d)", ErrTooManyOrphans, len(orphans))
	}
	for i, id := range orphans {
		if err := s.Destroy(ctx, id); err != nil {
			return orphans[:i], err
		}
	}
	zeroed, err := s.slots.ResolveDamaged(live)
	for _, id := range zeroed {
		if err := eraseEntry(ctx, s.kv, s.stream, id); err != nil {
			return append(orphans, zeroed...), err
		}
	}
	orphans = append(orphans, zeroed...)
	if err != nil {
		return orphans, err
	}
	if kept := s.slots.Damaged(); len(kept) > 0 {
		return orphans, &DamagedSlotsError{Slots: kept}
	}
	return orphans, nil
}

// ErrDamagedSlots is what Reclaim's error matches when key slots with a bad
// checksum were kept: they may hold a live material's key, which then
// cannot be opened until the slot file is restored from a copy.
var ErrDamagedSlots = errors.New("material: damaged key slots kept")

// DamagedSlotsError names the damaged slots Reclaim kept.
type DamagedSlotsError struct{ Slots []DamagedSlot }

func (e *DamagedSlotsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "material: %d key slot(s) fail their checksum and were kept:", len(e.Slots))
	for _, d := range e.Slots {
		id := d.ID
		if id == "" {
			id = "(illegible)"
		}
		fmt.Fprintf(&b, " slot %d material %s;", d.Slot, id)
	}
	return b.String()
}

func (e *DamagedSlotsError) Is(target error) bool { return target == ErrDamagedSlots }

// Close releases the per-material key store.
func (s *Store) Close() error { return s.keys.Close() }

// slotKeys adapts the slot file to keyStore.
type slotKeys struct{ f *slotFile }

func (k slotKeys) Create(_ context.Context, id string) (secret.Bytes, error) { return k.f.Create(id) }
func (k slotKeys) Get(_ context.Context, id string) (secret.Bytes, error)    { return k.f.Get(id) }
func (k slotKeys) Destroy(_ context.Context, id string) error                { return k.f.Destroy(id) }
func (k slotKeys) Close() error                                              { return k.f.Close() }

// bucketKeys keeps per-material keys in their own bucket (external
// deployments).
type bucketKeys struct {
	kv     jetstream.KeyValue
	stream jetstream.Stream
}

func (k bucketKeys) Create(ctx context.Context, id string) (secret.Bytes, error) {
	key := shred.NewKey()
	if _, err := k.kv.Create(ctx, id, key.Expose()); err != nil {
		key.Clear()
		return secret.Bytes{}, err
	}
	return key, nil
}

func (k bucketKeys) Get(ctx context.Context, id string) (secret.Bytes, error) {
	e, err := k.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return secret.Bytes{}, ErrNotFound
	}
	if err != nil {
		return secret.Bytes{}, fmt.Errorf("material: key of %s: %w", id, err)
	}
	v := e.Value()
	if len(v) != shred.KeySize {
		return secret.Bytes{}, fmt.Errorf("material: key of %s: damaged", id)
	}
	key := secret.New(v)
	clear(v)
	return key, nil
}

func (k bucketKeys) Destroy(ctx context.Context, id string) error {
	return eraseEntry(ctx, k.kv, k.stream, id)
}

func (bucketKeys) Close() error { return nil }
