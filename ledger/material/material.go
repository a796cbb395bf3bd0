package material

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
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
	// ReadOnly opens the store to verify it (audit verify on a stopped
	// data directory): nothing is created or written; a missing bucket or
	// slot file reads as empty. Only Verify, Get without repair and IDs
	// may be called.
	ReadOnly bool
	// Storage, when set, is checked before every write, and a write it
	// reports failed stops waiting for the server's answer (the embedded
	// server's disk; see ledger.Storage).
	Storage interface {
		CheckWrite(n int) error
		WriteFault() context.Context
	}
}

// Store holds wrapped key material, every part twice.
type Store struct {
	// Two buckets of sealed material and two key stores of per-material
	// keys: [0] is the first copy, [1] the second (copies.go).
	kv     [2]jetstream.KeyValue
	stream [2]jetstream.Stream
	keys   [2]keyStore
	slots  [2]*slotFile // == keys on the embedded default, else nil
	cfg    Config

	repaired int
	// repair is held by Destroy throughout and by every repair, so a
	// repair never writes back a key or bytes a Destroy has removed.
	repair sync.Mutex
}

// keyStore keeps per-material keys.
type keyStore interface {
	Create(ctx context.Context, id string) (secret.Bytes, error)
	Put(ctx context.Context, id string, key secret.Bytes) error // write exactly this key
	Get(ctx context.Context, id string) (secret.Bytes, error)   // ErrNotFound once destroyed
	Destroy(ctx context.Context, id string) error               // idempotent
	Close() error
}

// Open creates or opens the bucket and the per-material key store.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBucket
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg}
	if cfg.ReadOnly {
		return openReadOnly(ctx, js, cfg)
	}
	for i, name := range []string{cfg.Bucket, cfg.Bucket + CopySuffix} {
		desc := "keyledger: key material wrapped under the root key and a per-material key (deletable)"
		if i == 1 {
			desc = "keyledger: the second copy of " + cfg.Bucket + " (deletable)"
		}
		if s.kv[i], s.stream[i], err = openBucket(ctx, js, name, cfg.Replicas, desc); err != nil {
			return nil, err
		}
	}
	if cfg.ShredDir != "" {
		for i, name := range []string{slotsFile, copySlotsFile} {
			f, repaired, err := openSlotsFile(cfg.ShredDir, name, false)
			if err != nil {
				s.Close()
				return nil, err
			}
			s.slots[i], s.keys[i] = f, slotKeys{f}
			s.repaired += repaired
		}
		return s, nil
	}
	for i, name := range []string{cfg.Bucket + "-keys", cfg.Bucket + "-keys" + CopySuffix} {
		kkv, kstream, err := openBucket(ctx, js, name, cfg.Replicas, "keyledger: per-material keys (erased to destroy material)")
		if err != nil {
			return nil, err
		}
		s.keys[i] = bucketKeys{kv: kkv, stream: kstream}
	}
	return s, nil
}

// openReadOnly opens what exists of the store without creating or writing
// anything.
func openReadOnly(ctx context.Context, js jetstream.JetStream, cfg Config) (*Store, error) {
	s := &Store{cfg: cfg}
	lookup := func(name string) (jetstream.KeyValue, error) {
		kv, err := js.KeyValue(ctx, name)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return missingBucket{}, nil
		}
		return kv, err
	}
	var err error
	for i, name := range []string{cfg.Bucket, cfg.Bucket + CopySuffix} {
		if s.kv[i], err = lookup(name); err != nil {
			return nil, fmt.Errorf("material: bucket %s: %w", name, err)
		}
	}
	if cfg.ShredDir != "" {
		for i, name := range []string{slotsFile, copySlotsFile} {
			f, _, err := openSlotsFile(cfg.ShredDir, name, true)
			if err != nil {
				s.Close()
				return nil, err
			}
			s.slots[i], s.keys[i] = f, slotKeys{f}
		}
		return s, nil
	}
	for i, name := range []string{cfg.Bucket + "-keys", cfg.Bucket + "-keys" + CopySuffix} {
		kv, err := lookup(name)
		if err != nil {
			return nil, fmt.Errorf("material: bucket %s: %w", name, err)
		}
		s.keys[i] = bucketKeys{kv: kv}
	}
	return s, nil
}

// Present reports whether a store opened ReadOnly found anything of
// itself (a bucket or a slot file); a store opened to write always has.
func (s *Store) Present() bool {
	for i := range 2 {
		if _, missing := s.kv[i].(missingBucket); !missing {
			return true
		}
		if f := s.slots[i]; f != nil && f.f != nil {
			return true
		}
	}
	return false
}

// missingBucket is a bucket that does not exist, read-only: every key is
// missing.
type missingBucket struct{ jetstream.KeyValue }

func (missingBucket) Get(context.Context, string) (jetstream.KeyValueEntry, error) {
	return nil, jetstream.ErrKeyNotFound
}

func (missingBucket) Keys(context.Context, ...jetstream.WatchOpt) ([]string, error) {
	return nil, jetstream.ErrNoKeysFound
}

// DefaultBucket is the material bucket's name unless Config says another.
const DefaultBucket = "keyledger-material"

// Streams names the JetStream streams of a material store's buckets (""
// for DefaultBucket), both copies: what another copy repairs.
func Streams(bucket string) []string {
	if bucket == "" {
		bucket = DefaultBucket
	}
	var out []string
	for _, b := range []string{bucket, bucket + "-keys"} {
		out = append(out, "KV_"+b, "KV_"+b+CopySuffix)
	}
	return out
}

// CopySuffix names the second copy's buckets after the first's.
const CopySuffix = "-copy"

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
	key, err := s.keys[0].Create(ctx, id)
	if errors.Is(err, errSlotExists) || errors.Is(err, jetstream.ErrKeyExists) {
		// A key left by a destroyed or never-committed material of the same
		// id (imported material keeps its id): replace it unless live.
		if _, _, lerr := s.read(ctx, id, nil, false); !errors.Is(lerr, ErrNotFound) {
			return fmt.Errorf("material: put %s: already stored", id)
		}
		if err = s.Destroy(ctx, id); err == nil {
			key, err = s.keys[0].Create(ctx, id)
		}
	}
	if err != nil {
		return fmt.Errorf("material: put %s: %w", id, err)
	}
	defer key.Clear()
	// Both keys durable, then both sealed copies, before the caller
	// commits to the material: a crash in between leaves an orphan that
	// Reclaim destroys.
	if err := s.keys[1].Put(ctx, id, key); err != nil {
		_ = s.Destroy(ctx, id)
		return fmt.Errorf("material: put %s (second copy of its key): %w", id, err)
	}
	sealed := shred.Seal(key, id, wrapped)
	// The two buckets are written at once: each waits for its own fsync.
	second := make(chan error, 1)
	go func() {
		_, err := s.kv[1].Put(ctx, id, sealed)
		second <- err
	}()
	_, err = s.kv[0].Create(ctx, id, sealed)
	if err2 := <-second; err == nil && err2 != nil {
		err = fmt.Errorf("(second copy) %w", err2)
	}
	if err != nil {
		_ = s.Destroy(ctx, id) // Reclaim retries after a crash
		return fmt.Errorf("material: put %s: %w", id, err)
	}
	return nil
}

// Get returns the root-wrapped material for id, from whichever copy opens
// (repairing the other): ErrNotFound when it was destroyed or never
// stored, an *UnreadableError when it was stored and no copy opens.
func (s *Store) Get(ctx context.Context, id string) ([]byte, error) {
	wrapped, _, err := s.read(ctx, id, nil, true)
	return wrapped, err
}

// GetChecked is Get accepting only bytes whose Commitment is one of
// commitments (the ledger's, newest first): a copy that opens but holds
// other bytes is repaired like a damaged one.
func (s *Store) GetChecked(ctx context.Context, id string, commitments ...string) ([]byte, error) {
	wrapped, _, err := s.read(ctx, id, commitments, true)
	return wrapped, err
}

// Destroy destroys the material for id: first its per-material keys
// (overwritten and fsynced on the embedded default; the second copy
// first), then the sealed bytes in both buckets (JetStream secure delete,
// defence in depth). Destroying missing material is not an error, so it
// can be retried after a crash.
func (s *Store) Destroy(ctx context.Context, id string) error {
	s.repair.Lock()
	defer s.repair.Unlock()
	// The second copy first: a crash between the two leaves the state a
	// crash inside Put leaves (the first copy only), which Reclaim
	// destroys when the ledger does not hold the material live.
	for _, i := range []int{1, 0} {
		if err := s.keys[i].Destroy(ctx, id); err != nil {
			return fmt.Errorf("material: destroy %s: %w", id, err)
		}
	}
	for i := range s.kv {
		if err := eraseEntry(ctx, s.kv[i], s.stream[i], id); err != nil {
			return err
		}
	}
	return nil
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
	_, _, err := s.read(ctx, id, nil, false)
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
	if s.slots[0] == nil {
		return nil, nil
	}
	var orphans []string
	for _, id := range s.slotIDs() {
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
	for _, f := range s.slots {
		zeroed, err := f.ResolveDamaged(live)
		for _, id := range zeroed {
			if err := s.Destroy(ctx, id); err != nil {
				return append(orphans, zeroed...), err
			}
		}
		orphans = append(orphans, zeroed...)
		if err != nil {
			return orphans, err
		}
	}
	return orphans, nil
}

// slotIDs is every id either slot file holds, sorted.
func (s *Store) slotIDs() []string {
	ids := append(s.slots[0].IDs(), s.slots[1].IDs()...)
	slices.Sort(ids)
	return slices.Compact(ids)
}

// Close releases the per-material key stores.
func (s *Store) Close() error {
	var errs []error
	for _, k := range s.keys {
		if k != nil {
			errs = append(errs, k.Close())
		}
	}
	return errors.Join(errs...)
}

// slotKeys adapts the slot file to keyStore.
type slotKeys struct{ f *slotFile }

func (k slotKeys) Create(_ context.Context, id string) (secret.Bytes, error) { return k.f.Create(id) }
func (k slotKeys) Put(_ context.Context, id string, key secret.Bytes) error  { return k.f.Put(id, key) }
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

func (k bucketKeys) Put(ctx context.Context, id string, key secret.Bytes) error {
	_, err := k.kv.Put(ctx, id, key.Expose())
	return err
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
