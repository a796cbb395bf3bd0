// Package merkle keeps the RFC 6962 Merkle tree over the ledger's events
// (leaf i is event i's exact stored bytes, so the tree's indexes are the
// ledger's dense event indexes) and produces signed checkpoints in the C2SP
// tlog-checkpoint / signed-note format, inclusion proofs and consistency
// proofs. Hashing and proofs are golang.org/x/mod/sumdb/tlog's, notes are
// golang.org/x/mod/sumdb/note's.
//
// The tree's hashes live in tlog tiles of height 8 (C2SP tlog-tiles: a full
// tile is the 256 hashes at the bottom of an 8-level subtree): full tiles go
// to a TileStore, memory holds only the right edge (the partial tile of each
// level, at most 8 KiB a level), completed tiles not yet stored, and a
// bounded cache of tiles read back. So memory does not grow with the
// history. Tiles are derived state: whoever replays the ledger appends the
// same leaves and Flush writes again any tile that is missing, incomplete or
// differs. A tile read back from the store is checked against its parent's
// hash, up to the right edge in memory, before any proof uses it: a
// tampered or truncated tile is an error, never a proof.
//
// A Tree is safe for concurrent use; Append must be called in event order.
// The zero Tree keeps its tiles in memory (what one-off tools need).
package merkle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// TileHeight is the height of the tree's tiles (the C2SP and Go checksum
// database height).
const TileHeight = 8

// tileHashes is the width of a full tile; tileBytes its data size.
const (
	tileHashes = 1 << TileHeight
	tileBytes  = tileHashes * tlog.HashSize
)

// Errors callers branch on.
var (
	// ErrRange means a proof was asked for sizes or indexes the tree does not have.
	ErrRange = errors.New("merkle: index or size out of range")
	// ErrTileCorrupt means a stored tile is missing, incomplete or does not
	// match the tree: it was not used. Replaying the ledger (a restart)
	// writes it again.
	ErrTileCorrupt = errors.New("merkle: stored tile is missing or does not match the tree")
)

// readTimeout bounds reading tiles for one proof.
const readTimeout = 30 * time.Second

// Tree is the Merkle tree of the ledger so far.
type Tree struct {
	mu    sync.RWMutex
	size  int64    // number of leaves
	edge  [][]byte // edge[L]: the level-8L hashes of tile level L's partial tile
	store TileStore
	cache *tileCache
	// pending holds completed tiles not yet confirmed in the store, in
	// the order they completed.
	pending      map[tileID][]byte
	pendingOrder []tileID
	written      chan struct{} // signalled when a tile completes
	flushing     sync.Mutex    // one Flush at a time
	// leaves, when set, rebuilds a full tile that is missing or wrong in
	// the store from the ledger's events (RepairFrom); rebuilt counts them.
	leaves  LeafSource
	rebuilt int
	// appending is Append's view, reused under mu: Append reads only the
	// edge, as it is, so it needs neither a copy of it nor a new view.
	appending view
	// newest[l] is the newest stored hash at tree level l, which is what
	// the next Append reads at that level (a left sibling on the right
	// frontier). Read from a tile, a hash above the tile's bottom level is
	// recomputed from up to 128 of the hashes under it: about 3.5 SHA-256
	// per Append on average, for nothing. Unset after Restore: Append then
	// reads the edge until it has stored each level once.
	newest [64]storedHash
}

// storedHash is one stored hash of the tree and its stored-hash index.
type storedHash struct {
	index int64
	hash  tlog.Hash
	set   bool
}

// LeafSource calls fn with the exact stored bytes of the n leaves from
// index first on, in order: the ledger's events.
type LeafSource func(ctx context.Context, first int64, n int, fn func(raw []byte) error) error

// RepairFrom makes the tree rebuild a stored tile that is missing or does
// not match from the leaves under it, instead of failing the proof that
// needs it. The rebuilt tile is checked like a stored one before it is
// used, and written back to the store.
func (t *Tree) RepairFrom(src LeafSource) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.leaves = src
}

// Rebuilt is how many tiles RepairFrom's source rebuilt.
func (t *Tree) Rebuilt() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.rebuilt
}

type tileID struct {
	L int
	N int64
}

// New returns an empty tree keeping its full tiles in store and up to
// cacheTiles of them (8 KiB each) in memory.
func New(store TileStore, cacheTiles int) *Tree {
	t := &Tree{store: store, cache: newTileCache(cacheTiles)}
	t.init()
	return t
}

// init completes a zero Tree; the caller holds mu for writing (or owns t).
func (t *Tree) init() {
	if t.store == nil {
		t.store = NewMemoryStore()
	}
	if t.cache == nil {
		t.cache = newTileCache(64)
	}
	if t.pending == nil {
		t.pending = map[tileID][]byte{}
	}
	if t.written == nil {
		t.written = make(chan struct{}, 1)
	}
}

// Completed is signalled (never blocking the tree) whenever a tile
// completes, so a flusher knows there is work.
func (t *Tree) Completed() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.init()
	return t.written
}

// Append adds the next event (its exact stored bytes) as a leaf.
func (t *Tree) Append(event []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.init()
	v := &t.appending
	*v = view{t: t, ctx: context.Background(), size: t.size, edge: t.edge, edgeOnly: true, newest: &t.newest, out: v.out} // the right frontier is always in the edge
	hs, err := tlog.StoredHashes(t.size, event, v)
	v.edge, v.newest = nil, nil
	if err != nil {
		return err
	}
	for level, h := range hs {
		t.newest[level] = storedHash{index: tlog.StoredHashIndex(level, t.size>>level), hash: h, set: true}
	}
	t.size++
	for i := 0; i < len(hs); i += TileHeight {
		L := i / TileHeight
		for len(t.edge) <= L {
			t.edge = append(t.edge, make([]byte, 0, tileBytes))
		}
		t.edge[L] = append(t.edge[L], hs[i][:]...)
		if len(t.edge[L]) == tileBytes {
			id := tileID{L: L, N: t.size>>(TileHeight*L)>>TileHeight - 1}
			t.pending[id] = t.edge[L]
			t.pendingOrder = append(t.pendingOrder, id)
			// A new slice: views taken earlier keep the old one.
			t.edge[L] = make([]byte, 0, tileBytes)
			select {
			case t.written <- struct{}{}:
			default:
			}
		}
	}
	return nil
}

// Size is the number of leaves.
func (t *Tree) Size() int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.size
}

// Pending is how many completed tiles are not yet confirmed in the store.
func (t *Tree) Pending() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.pendingOrder)
}

// Flush stores every completed tile not yet confirmed in the store. A tile
// already stored with the same data is left alone; one missing, incomplete
// or different is written again and counted in repaired. Tiles stay pending
// (in memory) until stored, so a failed Flush loses nothing.
func (t *Tree) Flush(ctx context.Context) (repaired int, err error) {
	t.flushing.Lock()
	defer t.flushing.Unlock()
	t.mu.Lock()
	t.init()
	order := append([]tileID(nil), t.pendingOrder...)
	t.mu.Unlock()
	for _, id := range order {
		t.mu.RLock()
		data := t.pending[id]
		t.mu.RUnlock()
		stored, err := t.store.ReadTile(ctx, id.L, id.N)
		switch {
		case err == nil && bytes.Equal(stored, data):
		case err == nil || errors.Is(err, ErrTileNotFound):
			if err == nil {
				repaired++
			}
			if err := t.store.WriteTile(ctx, id.L, id.N, data); err != nil {
				return repaired, fmt.Errorf("merkle: writing tile %d/%d: %w", id.L, id.N, err)
			}
		default:
			return repaired, fmt.Errorf("merkle: reading tile %d/%d: %w", id.L, id.N, err)
		}
		t.mu.Lock()
		delete(t.pending, id)
		t.pendingOrder = t.pendingOrder[1:]
		t.mu.Unlock()
	}
	return repaired, nil
}

// Frontier is the part of a tree that stays in memory: its size and the
// right edge. With every completed tile in the store (Flush), it is all a
// snapshot needs to restore the tree.
type Frontier struct {
	Size int64
	Edge [][]byte // Edge[L]: the level-8L hashes of tile level L's partial tile
}

// Frontier returns the tree's size and right edge, copied.
func (t *Tree) Frontier() Frontier {
	t.mu.RLock()
	defer t.mu.RUnlock()
	f := Frontier{Size: t.size}
	for _, e := range t.edge {
		f.Edge = append(f.Edge, bytes.Clone(e))
	}
	return f
}

// Restore returns a tree continuing from f over store, whose tiles must
// already hold every tile f's tree completed. Tiles it reads are checked
// against f's edge as always.
func Restore(f Frontier, store TileStore, cacheTiles int) (*Tree, error) {
	t := New(store, cacheTiles)
	for L, e := range f.Edge {
		if len(e) != int(f.Size>>(TileHeight*L)%tileHashes)*tlog.HashSize {
			return nil, errors.New("merkle: frontier edge does not match its size")
		}
		buf := make([]byte, len(e), tileBytes)
		copy(buf, e)
		t.edge = append(t.edge, buf)
	}
	if f.Size>>(TileHeight*len(f.Edge)) != 0 {
		return nil, errors.New("merkle: frontier edge too short for its size")
	}
	t.size = f.Size
	return t, nil
}

// CheckStored reads from the store, and checks up to the right edge, the
// first and the last full tile of every level, repairing nothing: after
// Restore, a store that lost its tiles (a deleted bucket) or never had
// them (a snapshot taken before they were stored) shows here, not in a
// proof.
func (t *Tree) CheckStored(ctx context.Context) error {
	t.mu.Lock()
	t.init()
	v := t.viewLocked(ctx)
	t.mu.Unlock()
	v.noRepair = true
	for L := range v.edge {
		full := v.size >> (TileHeight * L) >> TileHeight // full tiles at level L
		for _, N := range []int64{0, full - 1} {
			if N < 0 {
				continue
			}
			if _, err := v.tile(L, N); err != nil {
				return err
			}
		}
	}
	return nil
}

// Root is the tree hash of the first size leaves.
func (t *Tree) Root(size int64) (tlog.Hash, error) {
	v, cancel := t.view()
	defer cancel()
	if size < 0 || size > v.size {
		return tlog.Hash{}, ErrRange
	}
	return tlog.TreeHash(size, v)
}

// Inclusion proves that leaf index is in the tree of the first size leaves.
func (t *Tree) Inclusion(index, size int64) (tlog.RecordProof, error) {
	v, cancel := t.view()
	defer cancel()
	if index < 0 || index >= size || size > v.size {
		return nil, ErrRange
	}
	return tlog.ProveRecord(size, index, v)
}

// Consistency proves that the tree of size newSize extends that of oldSize.
func (t *Tree) Consistency(oldSize, newSize int64) (tlog.TreeProof, error) {
	v, cancel := t.view()
	defer cancel()
	if oldSize < 1 || oldSize > newSize || newSize > v.size {
		return nil, ErrRange
	}
	return tlog.ProveTree(newSize, oldSize, v)
}

// view is a consistent picture of the tree at one size, readable without
// holding the tree's lock: edge slices are only ever appended to past what
// a view sees, and completed tiles never change.
type view struct {
	t        *Tree
	ctx      context.Context
	size     int64
	edge     [][]byte
	edgeOnly bool // Append's reads: never touch the store
	noRepair bool // CheckStored's reads: the store as it is
	// Append's view only: the newest hash of each level (Tree.newest),
	// and the slice its reads return, reused (tlog copies what it needs).
	newest *[64]storedHash
	out    []tlog.Hash
}

func (t *Tree) view() (*view, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.init()
	return t.viewLocked(ctx), cancel
}

func (t *Tree) viewLocked(ctx context.Context) *view {
	return &view{t: t, ctx: ctx, size: t.size, edge: append([][]byte(nil), t.edge...)}
}

// ReadHashes implements tlog.HashReader from the edge and the tiles.
func (v *view) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	var out []tlog.Hash
	if v.newest != nil {
		out = append(v.out[:0], make([]tlog.Hash, len(indexes))...)
		v.out = out
	} else {
		out = make([]tlog.Hash, len(indexes))
	}
	for i, x := range indexes {
		if x < 0 || x >= tlog.StoredHashCount(v.size) {
			return nil, ErrRange
		}
		if v.newest != nil {
			if level, _ := tlog.SplitStoredHashIndex(x); level < len(v.newest) && v.newest[level].set && v.newest[level].index == x {
				out[i] = v.newest[level].hash
				continue
			}
		}
		tile := tlog.TileForIndex(TileHeight, x)
		data, err := v.tile(tile.L, tile.N)
		if err != nil {
			return nil, err
		}
		if out[i], err = tlog.HashFromTile(tile, data, x); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// tile returns the data of tile (L, N): the edge's partial tile, or a full
// tile from pending, the cache or (checked) the store.
func (v *view) tile(L int, N int64) ([]byte, error) {
	m := v.size >> (TileHeight * L) // complete nodes at level 8L
	switch edgeN := m >> TileHeight; {
	case N > edgeN || (N == edgeN && L >= len(v.edge)):
		return nil, ErrRange
	case N == edgeN:
		return v.edge[L], nil
	}
	id := tileID{L: L, N: N}
	t := v.t
	if v.edgeOnly {
		return nil, fmt.Errorf("merkle: internal error: append needs tile %d/%d", L, N)
	}
	t.mu.RLock()
	data, ok := t.pending[id]
	t.mu.RUnlock()
	if ok {
		return data, nil
	}
	if data, ok := t.cache.get(id); ok {
		return data, nil
	}
	data, err := t.store.ReadTile(v.ctx, L, N)
	if err != nil && !errors.Is(err, ErrTileNotFound) {
		return nil, fmt.Errorf("merkle: reading tile %d/%d: %w", L, N, err)
	}
	if ok, err = v.matches(L, N, data); err != nil {
		return nil, err
	}
	if !ok {
		t.mu.RLock()
		src := t.leaves
		t.mu.RUnlock()
		if src == nil || v.noRepair {
			return nil, fmt.Errorf("%w (tile %d/%d)", ErrTileCorrupt, L, N)
		}
		if data, err = v.rebuild(src, L, N, false); err != nil {
			return nil, fmt.Errorf("%w (tile %d/%d; rebuilding it from the ledger failed: %v)", ErrTileCorrupt, L, N, err)
		}
		if ok, err = v.matches(L, N, data); err != nil {
			return nil, err
		}
		if !ok && L > 0 {
			// A stored child is garbled too (the same length, so it could
			// not be told apart): rebuild every child from the leaves.
			if data, err = v.rebuild(src, L, N, true); err != nil {
				return nil, fmt.Errorf("%w (tile %d/%d; rebuilding it from the ledger failed: %v)", ErrTileCorrupt, L, N, err)
			}
			if ok, err = v.matches(L, N, data); err != nil {
				return nil, err
			}
		}
		if !ok {
			return nil, fmt.Errorf("%w (tile %d/%d; the tiles or events under it do not match either)", ErrTileCorrupt, L, N)
		}
		// Best effort: a failed write leaves the next reader to rebuild it again.
		_ = t.store.WriteTile(v.ctx, L, N, data)
		t.mu.Lock()
		t.rebuilt++
		t.mu.Unlock()
	}
	t.cache.put(id, data)
	return data, nil
}

// matches reports whether data is full tile (L, N) of this tree: its
// subtree root is its parent's hash at level 8(L+1), read (and so checked)
// up to the right edge.
func (v *view) matches(L int, N int64, data []byte) (bool, error) {
	if len(data) != tileBytes {
		return false, nil
	}
	parent, err := v.ReadHashes([]int64{tlog.StoredHashIndex(TileHeight*(L+1), N)})
	if err != nil {
		return false, err
	}
	return subtreeHash(data) == parent[0], nil
}

// rebuild computes full tile (L, N) from the leaves under it (level 0) or
// from its child tiles, rebuilding those that are missing, or with fromLeaves
// every one of them (256 times the leaves a level lower: the way past a
// garbled child). Nothing here is trusted: the caller checks the result
// against its parent.
func (v *view) rebuild(src LeafSource, L int, N int64, fromLeaves bool) ([]byte, error) {
	data := make([]byte, 0, tileBytes)
	if L == 0 {
		err := src(v.ctx, N*tileHashes, tileHashes, func(raw []byte) error {
			if len(data) == tileBytes {
				return errors.New("too many leaves")
			}
			h := tlog.RecordHash(raw)
			data = append(data, h[:]...)
			return nil
		})
		if err == nil && len(data) != tileBytes {
			err = fmt.Errorf("%d of %d leaves", len(data)/tlog.HashSize, tileHashes)
		}
		return data, err
	}
	for k := int64(0); k < tileHashes; k++ {
		child := N*tileHashes + k
		v.t.mu.RLock()
		c, ok := v.t.pending[tileID{L: L - 1, N: child}]
		v.t.mu.RUnlock()
		var err error
		if !ok && !fromLeaves {
			c, err = v.t.store.ReadTile(v.ctx, L-1, child)
		}
		if (!ok && fromLeaves) || errors.Is(err, ErrTileNotFound) || (err == nil && len(c) != tileBytes) {
			c, err = v.rebuild(src, L-1, child, fromLeaves)
		}
		if err != nil {
			return nil, err
		}
		h := subtreeHash(c)
		data = append(data, h[:]...)
	}
	return data, nil
}

// subtreeHash is the root of the subtree whose bottom hashes are data (a
// power of two of them).
func subtreeHash(data []byte) tlog.Hash {
	if len(data) == tlog.HashSize {
		return tlog.Hash(data)
	}
	half := len(data) / 2
	return tlog.NodeHash(subtreeHash(data[:half]), subtreeHash(data[half:]))
}
