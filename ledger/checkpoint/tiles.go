package checkpoint

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/keyledger/keyledger/ledger/internal/jsretry"
	"github.com/keyledger/keyledger/ledger/internal/streamname"
	"github.com/keyledger/keyledger/ledger/merkle"
)

// Tiles keeps the full tiles of the ledger's Merkle tree in a JetStream KV
// bucket beside the ledger (replicated like it), keyed by their C2SP tile
// path (tile/8/<L>/<N>). Tiles are derived from the ledger: a missing or
// wrong one is written again when the ledger is replayed.
type Tiles struct {
	kv jetstream.KeyValue
}

// OpenTiles creates or opens the tile bucket of a ledger stream.
func OpenTiles(ctx context.Context, nc *nats.Conn, ledgerStream string, replicas int) (*Tiles, error) {
	ledgerStream = streamname.Or(ledgerStream)
	if replicas == 0 {
		replicas = 1
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	kv, err := jsretry.Do(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
		return js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      ledgerStream + "_TILES",
			Description: "keyledger: tlog tiles (hashes) of the ledger's Merkle tree",
			History:     1,
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint: tile bucket: %w", err)
	}
	return &Tiles{kv: kv}, nil
}

func tileKey(L int, N int64) string {
	return tlog.Tile{H: merkle.TileHeight, L: L, N: N, W: 1 << merkle.TileHeight}.Path()
}

// ReadTile implements merkle.TileStore.
func (t *Tiles) ReadTile(ctx context.Context, L int, N int64) ([]byte, error) {
	e, err := t.kv.Get(ctx, tileKey(L, N))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, merkle.ErrTileNotFound
	}
	if err != nil {
		return nil, err
	}
	return e.Value(), nil
}

// WriteTile implements merkle.TileStore.
func (t *Tiles) WriteTile(ctx context.Context, L int, N int64, data []byte) error {
	_, err := t.kv.Put(ctx, tileKey(L, N), data)
	return err
}
