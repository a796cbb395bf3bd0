package merkle

import (
	"container/list"
	"context"
	"errors"
	"sync"
)

// ErrTileNotFound is what a TileStore returns for a tile it does not hold.
var ErrTileNotFound = errors.New("merkle: tile not stored")

// TileStore keeps full tiles (256 hashes, 8 KiB) of the tree, by tile level
// L and number N within the level. Writes of the same tile carry the same
// data unless something is wrong; the tree checks what it reads back.
type TileStore interface {
	ReadTile(ctx context.Context, L int, N int64) ([]byte, error)
	WriteTile(ctx context.Context, L int, N int64, data []byte) error
}

// MemoryStore is a TileStore in memory: for tools that build a tree once
// (an export's verification, a report) and for tests.
type MemoryStore struct {
	mu    sync.Mutex
	tiles map[tileID][]byte
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{tiles: map[tileID][]byte{}} }

// ReadTile implements TileStore.
func (s *MemoryStore) ReadTile(_ context.Context, L int, N int64) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.tiles[tileID{L, N}]
	if !ok {
		return nil, ErrTileNotFound
	}
	return d, nil
}

// WriteTile implements TileStore.
func (s *MemoryStore) WriteTile(_ context.Context, L int, N int64, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tiles[tileID{L, N}] = append([]byte(nil), data...)
	return nil
}

// Delete removes a tile (tests use it to stand for a crash before a write).
func (s *MemoryStore) Delete(L int, N int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tiles, tileID{L, N})
}

// tileCache is a least-recently-used cache of checked full tiles.
type tileCache struct {
	mu    sync.Mutex
	max   int
	order *list.List // of tileID, most recent first
	items map[tileID]*list.Element
	data  map[tileID][]byte
}

func newTileCache(max int) *tileCache {
	if max < 1 {
		max = 1
	}
	return &tileCache{max: max, order: list.New(), items: map[tileID]*list.Element{}, data: map[tileID][]byte{}}
}

func (c *tileCache) get(id tileID) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[id]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return c.data[id], true
}

func (c *tileCache) put(id tileID, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[id]; ok {
		c.order.MoveToFront(e)
		return
	}
	c.items[id] = c.order.PushFront(id)
	c.data[id] = data
	for c.order.Len() > c.max {
		old := c.order.Remove(c.order.Back()).(tileID)
		delete(c.items, old)
		delete(c.data, old)
	}
}
