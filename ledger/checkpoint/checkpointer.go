package checkpoint

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/merkle"
)

// Config describes what a Checkpointer signs and where it keeps the
// result.
type Config struct {
	Tree  *merkle.Tree // the Merkle tree over the ledger, kept current by the caller
	Store *Store
	// Signer signs checkpoints; nil means this instance makes none.
	// Verifier is its public key (note vkey), Origin names the log.
	Signer   note.Signer
	Verifier string
	Origin   string
	// Writers, when set, returns the registered ledger writers (ID →
	// base64 public key), which each checkpoint then names.
	Writers func() map[string]string
	// Revoked, when set, returns the revoked writers and where the ledger
	// revoked them. A checkpoint of n events names those revoked before
	// event n apart from the writers, and those revoked since (the tree
	// lags the fold) among them: what the ledger held after n events, which
	// a fold from a base is checked against (chain.CheckNamedRevoked).
	Revoked func() map[string]chain.Revocation
}

// Checkpointer signs checkpoints of the ledger's Merkle tree and stores
// them. Run makes one every interval; Checkpoint makes one on demand. It is
// safe for concurrent use.
type Checkpointer struct {
	cfg  Config
	mu   sync.Mutex
	last int64 // tree size of the newest checkpoint this Checkpointer stored
	at   time.Time
}

// Last returns the tree size and time of the newest checkpoint this
// Checkpointer stored (0 and the zero time before the first).
func (c *Checkpointer) Last() (size int64, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last, c.at
}

// NewCheckpointer returns a Checkpointer; it does nothing until called.
func NewCheckpointer(cfg Config) *Checkpointer {
	return &Checkpointer{cfg: cfg}
}

// Tree is the Merkle tree the checkpoints cover.
func (c *Checkpointer) Tree() *merkle.Tree { return c.cfg.Tree }

// Verifier is the key (note vkey) that verifies the checkpoints.
func (c *Checkpointer) Verifier() string { return c.cfg.Verifier }

// Newest returns the newest stored signed checkpoint and how many are
// stored (ErrNone before the first).
func (c *Checkpointer) Newest(ctx context.Context) (signed []byte, stored uint64, err error) {
	if signed, err = c.cfg.Store.Latest(ctx); err != nil {
		return nil, 0, err
	}
	stored, err = c.cfg.Store.Count(ctx)
	return signed, stored, err
}

// Checkpoint signs and stores a checkpoint of the tree as it is now, if it
// grew since the last one, and returns the newest signed note.
func (c *Checkpointer) Checkpoint(ctx context.Context) ([]byte, error) {
	return c.checkpoint(ctx, false)
}

// Final is Checkpoint at shutdown: the checkpoint is kept for good
// (Store.Keep), so a deployment that stays down longer than the recent
// window still starts against the checkpoint of everything it wrote.
func (c *Checkpointer) Final(ctx context.Context) ([]byte, error) {
	return c.checkpoint(ctx, true)
}

func (c *Checkpointer) checkpoint(ctx context.Context, keep bool) ([]byte, error) {
	if c.cfg.Signer == nil {
		return nil, errors.New("checkpoint: no checkpoint signing key configured")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	size := c.cfg.Tree.Size()
	if size == 0 {
		return nil, errors.New("checkpoint: the ledger is empty")
	}
	if size == c.last {
		signed, err := c.cfg.Store.Latest(ctx)
		if err == nil && keep {
			err = c.cfg.Store.Keep(ctx, signed)
		}
		return signed, err
	}
	// Every tile the checkpoint covers is stored before it is signed, so a
	// tree restored from a frontier at or before it finds its tiles.
	if _, err := c.cfg.Tree.Flush(ctx); err != nil {
		return nil, err
	}
	root, err := c.cfg.Tree.Root(size)
	if err != nil {
		return nil, err
	}
	cp := merkle.Checkpoint{Origin: c.cfg.Origin, Size: size, Root: root}
	if c.cfg.Writers != nil {
		writers, revoked := c.cfg.Writers(), map[string]string{}
		if c.cfg.Revoked != nil {
			writers, revoked = chain.RevokedBefore(writers, c.cfg.Revoked(), uint64(size))
		}
		cp.Extensions = merkle.WriterLines(writers) + merkle.RevokedLines(revoked)
	}
	signed, err := merkle.Sign(cp, c.cfg.Signer)
	if err != nil {
		return nil, err
	}
	store := c.cfg.Store.Put
	if keep {
		store = c.cfg.Store.Keep
	}
	if err := store(ctx, signed); err != nil {
		return nil, err
	}
	c.last, c.at = size, time.Now()
	return signed, nil
}

// Run checkpoints every interval until ctx ends. A failed checkpoint is
// logged and retried at the next tick. Without a signer it returns at once.
func (c *Checkpointer) Run(ctx context.Context, interval time.Duration, logger *slog.Logger) {
	if c.cfg.Signer == nil {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := c.Checkpoint(ctx); err != nil && ctx.Err() == nil {
				logger.Warn("checkpoint failed; will retry", "error", err)
			}
		}
	}
}
