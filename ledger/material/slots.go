package material

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/keyledger/keyledger/crypto/durable"
	"github.com/keyledger/keyledger/crypto/secret"
	"github.com/keyledger/keyledger/crypto/shred"
)

// The slot file holds the per-material keys of the embedded default. It is
// an array of fixed-size, aligned slots that keyledger overwrites in place:
//
//	slot 0      header: slotHeader, zero padded, checksum
//	slot i > 0  free: all zeros
//	            live: "KLS1" | id length (1) | id (80, zero padded) |
//	                  key (32) | zeros (3) | checksum (8)
//
// The checksum is the first 8 bytes of SHA-256 over the slot's first 120
// bytes. A slot is written, then fsynced, before its material is stored
// or committed; destroying a material overwrites its slot with zeros and
// fsyncs. Free slots are reused lowest first, so the file is as large as
// the most materials ever live at once, not the history. A slot that is
// neither zeros nor valid is damaged: it is kept, never reused, until the
// ledger says whose it is (ResolveDamaged). A 128-byte aligned write lies
// within one disk sector, so a crash does not tear it; a bad checksum is
// far more likely a flipped bit in a live key, and zeroing it on sight
// would destroy that key for good.
const (
	slotSize   = 128
	slotIDMax  = 80
	slotKeyAt  = 5 + slotIDMax
	slotSumAt  = slotSize - 8
	slotMagic  = "KLS1"
	slotHeader = "keyledger per-material key slots v1\n"
	slotsFile  = "material-keys.slots"
	// copySlotsFile is the second copy: the same keys, each in a slot of
	// its own with its own checksum, at slot numbers of its own.
	copySlotsFile = "material-keys.copy.slots"
)

var (
	errSlotExists = errors.New("material: a key slot for this id exists")
	errSlotBroken = errors.New("material: key slot damaged")
)

// slotFile is the embedded default's keyStore. It is safe for concurrent
// use; every write is fsynced before the call returns.
type slotFile struct {
	mu    sync.Mutex
	f     *os.File
	index map[string]int64 // material id → slot number
	free  []int64          // free slot numbers, ascending
	count int64            // slots in the file, header included
	// damaged slots (bad checksum) → the material id they still name, or
	// "" when not even that is legible. Neither indexed nor free.
	damaged map[int64]string
	// readOnly: opened to verify (audit); load writes nothing, and no
	// method that writes may be called.
	readOnly bool
}

// DamagedSlot is a slot whose checksum fails and that may hold a live key.
type DamagedSlot struct {
	Slot int64
	ID   string // "" when the slot names no legible material id
}

// openSlots opens (or creates) the slot file in dir. repaired counts torn
// slots it zeroed.
func openSlots(dir string) (s *slotFile, repaired int, err error) {
	return openSlotsFile(dir, slotsFile, false)
}

// openSlotsFile opens (or creates) the slot file name in dir. Read-only,
// a missing file is an empty one and nothing is written.
func openSlotsFile(dir, name string, readOnly bool) (s *slotFile, repaired int, err error) {
	path := filepath.Join(dir, name)
	if readOnly {
		s = &slotFile{index: map[string]int64{}, damaged: map[int64]string{}, readOnly: true}
		if s.f, err = os.Open(path); errors.Is(err, os.ErrNotExist) {
			return s, 0, nil // no slot file: no keys; Get answers ErrNotFound
		} else if err != nil {
			return nil, 0, fmt.Errorf("material: key slots: %w", err)
		}
		if _, err := s.load(); err != nil {
			s.f.Close()
			return nil, 0, fmt.Errorf("material: key slots %s: %w", path, err)
		}
		return s, 0, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, 0, fmt.Errorf("material: key slots: %w", err)
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := createSlots(path); err != nil {
			return nil, 0, fmt.Errorf("material: creating key slots: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("material: key slots: %w", err)
	}
	s = &slotFile{f: f, index: map[string]int64{}, damaged: map[int64]string{}}
	if repaired, err = s.load(); err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("material: key slots %s: %w", path, err)
	}
	return s, repaired, nil
}

// createSlots writes a file holding only the header, atomically: a crash
// leaves either no file or a whole one.
func createSlots(path string) error {
	return durable.WriteFile(path, headerSlot(), 0o600)
}

func headerSlot() []byte {
	b := make([]byte, slotSize)
	copy(b, slotHeader)
	sealSlot(b)
	return b
}

func sealSlot(b []byte) {
	sum := sha256.Sum256(b[:slotSumAt])
	copy(b[slotSumAt:], sum[:8])
}

func slotValid(b []byte) bool {
	sum := sha256.Sum256(b[:slotSumAt])
	return bytes.Equal(b[slotSumAt:], sum[:8])
}

// load reads every slot, builds the index and free list, sets damaged
// slots aside, zeroes a torn tail, and drops trailing free slots.
func (s *slotFile) load() (repaired int, err error) {
	data, err := io.ReadAll(io.NewSectionReader(s.f, 0, 1<<40))
	if err != nil {
		return 0, err
	}
	defer clear(data)
	if len(data) < slotSize || !bytes.HasPrefix(data, []byte(slotHeader)) || !slotValid(data[:slotSize]) {
		return 0, errors.New("not a key slot file (bad header)")
	}
	dirty := false
	if tail := len(data) % slotSize; tail != 0 { // a torn extension
		if s.readOnly {
			data = data[:len(data)-tail]
		} else if _, err := s.f.WriteAt(make([]byte, tail), int64(len(data)-tail)); err != nil {
			return 0, err
		}
		data = data[:len(data)-tail]
		repaired++
		dirty = true
	}
	s.count = int64(len(data) / slotSize)
	zero := make([]byte, slotSize)
	for i := int64(1); i < s.count; i++ {
		b := data[i*slotSize : (i+1)*slotSize]
		if bytes.Equal(b, zero) {
			s.free = append(s.free, i)
			continue
		}
		id, ok := parseSlot(b)
		if !ok { // damaged: kept until the ledger says whose it is
			s.damaged[i] = legibleID(b)
			continue
		}
		if j, dup := s.index[id]; dup {
			return 0, fmt.Errorf("slots %d and %d both hold material %s", j, i, id)
		}
		s.index[id] = i
	}
	for len(s.free) > 0 && s.free[len(s.free)-1] == s.count-1 {
		s.free = s.free[:len(s.free)-1]
		s.count--
		dirty = true
	}
	if dirty && !s.readOnly {
		if err := s.f.Truncate(s.count * slotSize); err != nil {
			return 0, err
		}
		if err := s.f.Sync(); err != nil {
			return 0, err
		}
	}
	return repaired, nil
}

// parseSlot returns the material id of a valid live slot.
func parseSlot(b []byte) (string, bool) {
	if !bytes.HasPrefix(b, []byte(slotMagic)) || !slotValid(b) {
		return "", false
	}
	n := int(b[4])
	if n == 0 || n > slotIDMax {
		return "", false
	}
	return string(b[5 : 5+n]), true
}

// legibleID is the material id a damaged slot still names, or "".
func legibleID(b []byte) string {
	if !bytes.HasPrefix(b, []byte(slotMagic)) {
		return ""
	}
	n := int(b[4])
	if n == 0 || n > slotIDMax {
		return ""
	}
	for _, c := range b[5 : 5+n] {
		if c < 0x21 || c > 0x7e {
			return ""
		}
	}
	return string(b[5 : 5+n])
}

// Damaged returns the damaged slots, by slot number.
func (s *slotFile) Damaged() []DamagedSlot {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]DamagedSlot, 0, len(s.damaged))
	for slot, id := range s.damaged {
		out = append(out, DamagedSlot{Slot: slot, ID: id})
	}
	slices.SortFunc(out, func(a, b DamagedSlot) int { return int(a.Slot - b.Slot) })
	return out
}

// ResolveDamaged zeroes the damaged slots that name a material live does
// not report (a Create never committed, or a zeroing cut short) and returns
// their ids; a slot naming a live material, or none legibly, is kept.
func (s *slotFile) ResolveDamaged(live func(id string) bool) ([]string, error) {
	var zeroed []string
	for _, d := range s.Damaged() {
		if d.ID == "" || live(d.ID) {
			continue
		}
		if err := s.zeroDamaged(d.Slot); err != nil {
			return zeroed, err
		}
		zeroed = append(zeroed, d.ID)
	}
	return zeroed, nil
}

// DropDamaged zeroes the damaged slots nothing needs any more: those whose
// material has a valid slot again (rewritten from the other copy), and,
// when healthy says every live material has one, those naming no legible
// material. It returns how many it zeroed.
func (s *slotFile) DropDamaged(healthy bool) (int, error) {
	n := 0
	for _, d := range s.Damaged() {
		s.mu.Lock()
		_, rewritten := s.index[d.ID]
		s.mu.Unlock()
		if d.ID != "" && !rewritten || d.ID == "" && !healthy {
			continue
		}
		if err := s.zeroDamaged(d.Slot); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// zeroDamaged overwrites a damaged slot with zeros, fsyncs and frees it.
func (s *slotFile) zeroDamaged(slot int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return os.ErrClosed
	}
	if _, err := s.f.WriteAt(make([]byte, slotSize), slot*slotSize); err != nil {
		return fmt.Errorf("material: zeroing key slot: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("material: syncing zeroed key slot: %w", err)
	}
	delete(s.damaged, slot)
	i, _ := slices.BinarySearch(s.free, slot)
	s.free = slices.Insert(s.free, i, slot)
	return nil
}

// Create makes a new key for id, writes it to a free slot and fsyncs.
func (s *slotFile) Create(id string) (secret.Bytes, error) {
	if id == "" || len(id) > slotIDMax {
		return secret.Bytes{}, fmt.Errorf("material: id of %d bytes does not fit a key slot", len(id))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return secret.Bytes{}, os.ErrClosed
	}
	if _, ok := s.index[id]; ok {
		return secret.Bytes{}, errSlotExists
	}
	key := shred.NewKey()
	if err := s.write(id, key); err != nil {
		key.Clear()
		return secret.Bytes{}, err
	}
	return key, nil
}

// Put writes key as id's key (a copy of the other file's, or a repair):
// over id's slot if it has one, else into a free slot, and fsyncs.
func (s *slotFile) Put(id string, key secret.Bytes) error {
	if id == "" || len(id) > slotIDMax || key.Len() != shred.KeySize {
		return fmt.Errorf("material: id of %d bytes or key of %d bytes does not fit a key slot", len(id), key.Len())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return os.ErrClosed
	}
	return s.write(id, key)
}

// write puts id's key in its slot or the lowest free one and fsyncs. mu
// must be held.
func (s *slotFile) write(id string, key secret.Bytes) error {
	slot, had := s.index[id]
	if !had {
		slot = s.count
		if len(s.free) > 0 {
			slot = s.free[0]
		}
	}
	b := make([]byte, slotSize)
	defer clear(b)
	copy(b, slotMagic)
	b[4] = byte(len(id))
	copy(b[5:], id)
	copy(b[slotKeyAt:], key.Expose())
	sealSlot(b)
	if _, err := s.f.WriteAt(b, slot*slotSize); err != nil {
		return fmt.Errorf("material: writing key slot: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("material: syncing key slot: %w", err)
	}
	if had {
		return nil
	}
	if slot == s.count {
		s.count++
	} else {
		s.free = s.free[1:]
	}
	s.index[id] = slot
	return nil
}

// Get reads id's key back from its slot.
func (s *slotFile) Get(id string) (secret.Bytes, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	slot, ok := s.index[id]
	if !ok || s.f == nil {
		for _, d := range s.damaged {
			if d == id && id != "" {
				return secret.Bytes{}, errSlotBroken
			}
		}
		return secret.Bytes{}, ErrNotFound
	}
	b := make([]byte, slotSize)
	defer clear(b)
	if _, err := s.f.ReadAt(b, slot*slotSize); err != nil {
		return secret.Bytes{}, fmt.Errorf("material: reading key slot: %w", err)
	}
	if got, ok := parseSlot(b); !ok || got != id {
		return secret.Bytes{}, errSlotBroken
	}
	return secret.New(b[slotKeyAt : slotKeyAt+shred.KeySize]), nil
}

// Destroy overwrites id's slot with zeros and fsyncs, also a damaged slot
// naming id. A missing id is not an error.
func (s *slotFile) Destroy(id string) error {
	for _, d := range s.Damaged() {
		if d.ID == id && id != "" {
			if err := s.zeroDamaged(d.Slot); err != nil {
				return err
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	slot, ok := s.index[id]
	if !ok {
		return nil
	}
	if s.f == nil {
		return os.ErrClosed
	}
	if _, err := s.f.WriteAt(make([]byte, slotSize), slot*slotSize); err != nil {
		return fmt.Errorf("material: zeroing key slot: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("material: syncing zeroed key slot: %w", err)
	}
	delete(s.index, id)
	i, _ := slices.BinarySearch(s.free, slot)
	s.free = slices.Insert(s.free, i, slot)
	return nil
}

// IDs returns the ids of every live slot, sorted.
func (s *slotFile) IDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.index))
	for id := range s.index {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Close closes the file.
func (s *slotFile) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}
