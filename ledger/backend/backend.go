// Package backend connects keyledger to its NATS JetStream deployment, the
// embedded default or an existing cluster, and opens the ledger and the
// material store on it. It is the one place outside the ledger's own
// packages that holds a NATS connection, so nothing above the ledger
// imports NATS.
package backend

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/checkpoint"
	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/ledger/feed"
	"github.com/keyledger/keyledger/ledger/lease"
	"github.com/keyledger/keyledger/ledger/material"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/replication"
	"github.com/keyledger/keyledger/ledger/salvage"
	"github.com/keyledger/keyledger/ledger/sealstore"
	"github.com/keyledger/keyledger/ledger/segment"
	"github.com/keyledger/keyledger/ledger/snapshot"
)

// Backend is a connection to JetStream, and the embedded server if any.
type Backend struct {
	nc       *nats.Conn
	srv      *embedded.Server
	replicas int
	shredDir string // embedded default: where per-material keys live

	mu     sync.Mutex
	stores []*material.Store // closed by Close
}

// Embedded starts an embedded nats-server and connects to it in-process.
// Per-material keys then live in a slot file beside the JetStream storage:
// <parent of opts.DataDir>/shred, i.e. <data-dir>/shred for serve's
// <data-dir>/jetstream.
func Embedded(opts embedded.Options) (*Backend, error) {
	if opts.Repairable == nil {
		opts.Repairable = material.Streams("")
	}
	srv, err := embedded.Start(opts)
	if err != nil {
		return nil, err
	}
	nc, err := srv.Connect("keyledger")
	if err != nil {
		srv.Shutdown()
		return nil, err
	}
	return &Backend{nc: nc, srv: srv, replicas: 1,
		shredDir: filepath.Join(filepath.Dir(filepath.Clean(opts.DataDir)), "shred")}, nil
}

// Options tune a connection to an existing NATS deployment.
type Options struct {
	Replicas int // stream replicas: 3 on a three-node cluster
	// CredsFile is the NATS identity, if the deployment needs one: a .creds
	// file (JWT and seed) or a bare user nkey seed file ("SU…", as the
	// embedded server's audit identity is).
	CredsFile string
	// CAFile holds PEM CA certificates to trust for a NATS server that
	// requires TLS (e.g. serve --tls-self-signed's <data-dir>/tls/ca.pem);
	// empty: the system's.
	CAFile string
	Name   string
}

// partitionPing is how often an instance pings its NATS server.
const partitionPing = 2 * time.Second

// Connect uses an existing NATS deployment.
func Connect(url string, opts Options) (*Backend, error) {
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	if opts.Name == "" {
		opts.Name = "keyledger"
	}
	// No reconnect buffer: a publish made while disconnected must fail now,
	// not be sent later after its request was already answered with an error.
	// A server cut off by a partition sends no reset: it falls silent, and
	// with nats.go's default ping every 2 minutes the instance would wait
	// minutes before trying another server of the cluster. A ping every
	// 2 s, two unanswered, moves it within about 6 s.
	nopts := []nats.Option{nats.Name(opts.Name), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(-1), nats.PingInterval(partitionPing), nats.MaxPingsOutstanding(2)}
	if opts.CredsFile != "" {
		auth, err := credentials(opts.CredsFile)
		if err != nil {
			return nil, err
		}
		nopts = append(nopts, auth)
	}
	if opts.CAFile != "" {
		nopts = append(nopts, nats.RootCAs(opts.CAFile))
	}
	nc, err := nats.Connect(url, nopts...)
	if err != nil {
		return nil, fmt.Errorf("backend: connect %s: %w", url, err)
	}
	return &Backend{nc: nc, replicas: opts.Replicas}, nil
}

// credentials picks the NATS option for a credentials file.
func credentials(path string) (nats.Option, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("backend: credentials: %w", err)
	}
	defer clear(data)
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("SU")) {
		return nats.NkeyOptionFromSeed(path)
	}
	return nats.UserCredentials(path), nil
}

// AuditSeedFile is the embedded server's subscribe-only nkey seed file for
// audit subscribers, or "" when the deployment is external.
func (b *Backend) AuditSeedFile() string {
	if b.srv == nil {
		return ""
	}
	return b.srv.AuditSeedFile()
}

// AuditorSeedFile is the embedded server's nkey seed file of a named
// auditor (embedded.Options.Auditors), or "".
func (b *Backend) AuditorSeedFile(name string) string {
	if b.srv == nil {
		return ""
	}
	return b.srv.AuditorSeedFile(name)
}

// ShredDir is where the embedded default keeps its per-material key slot
// file ("" with an external deployment, whose per-material keys live in a
// bucket). A second region served by the same process keeps its own slot
// file in a directory under it.
func (b *Backend) ShredDir() string { return b.shredDir }

// OpenLedger opens the ledger stream.
func (b *Backend) OpenLedger(ctx context.Context, cfg ledger.Config) (*ledger.Ledger, error) {
	if cfg.Replicas == 0 {
		cfg.Replicas = b.replicas
	}
	if b.srv != nil && cfg.Storage == nil {
		cfg.Storage = b.srv
	}
	return ledger.Open(ctx, b.nc, cfg)
}

// ImportAfterBase imports a ledger that continues a base into the
// deployment (ledger.ImportAfterBase).
func (b *Backend) ImportAfterBase(ctx context.Context, cfg ledger.Config, base segment.Base, tree merkle.Frontier, next func() ([]byte, error)) (chain.Head, error) {
	if cfg.Replicas == 0 {
		cfg.Replicas = b.replicas
	}
	if b.srv != nil && cfg.Storage == nil {
		cfg.Storage = b.srv
	}
	return ledger.ImportAfterBase(ctx, b.nc, cfg, base, tree, next)
}

// OpenMaterials opens the material store. On the embedded default its
// per-material keys are in the slot file unless cfg says otherwise; with an
// external deployment they are in a bucket shared by every instance.
func (b *Backend) OpenMaterials(ctx context.Context, cfg material.Config) (*material.Store, error) {
	if cfg.Replicas == 0 {
		cfg.Replicas = b.replicas
	}
	if cfg.ShredDir == "" {
		cfg.ShredDir = b.shredDir
	}
	if b.srv != nil && cfg.Storage == nil {
		cfg.Storage = b.srv
	}
	s, err := material.Open(ctx, b.nc, cfg)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.stores = append(b.stores, s)
	b.mu.Unlock()
	return s, nil
}

// OpenReplication opens a region's multi-Region key replication streams
// (its outbox, and its inbox sourcing the peers' outboxes).
func (b *Backend) OpenReplication(ctx context.Context, cfg replication.Config) (*replication.Link, error) {
	if cfg.Replicas == 0 {
		cfg.Replicas = b.replicas
	}
	return replication.Open(ctx, b.nc, cfg)
}

// ReadMaterials opens the material store for reading only, creating and
// changing nothing (material.OpenReader): per-material keys from the slot
// file in shredDir, or on the embedded default its own when shredDir is
// empty; with an external deployment and no shredDir, from its key
// bucket. shredDir names the slot directory of an embedded server running
// elsewhere (<data-dir>/shred), read beside it.
func (b *Backend) ReadMaterials(ctx context.Context, shredDir string) (*material.Reader, error) {
	if shredDir == "" {
		shredDir = b.shredDir
	}
	return material.OpenReader(ctx, b.nc, material.Config{ShredDir: shredDir})
}

// OpenCheckpoints opens the checkpoint stream of a ledger stream.
func (b *Backend) OpenCheckpoints(ctx context.Context, ledgerStream string) (*checkpoint.Store, error) {
	return checkpoint.Open(ctx, b.nc, ledgerStream, b.replicas)
}

// OpenSnapshots opens the snapshot store of a ledger stream.
func (b *Backend) OpenSnapshots(ctx context.Context, ledgerStream string) (*snapshot.Store, error) {
	return snapshot.Open(ctx, b.nc, ledgerStream, b.replicas)
}

// ReadSnapshots opens the snapshot store of a ledger stream without
// creating it (snapshot.ErrNone if there is none).
func (b *Backend) ReadSnapshots(ctx context.Context, ledgerStream string) (*snapshot.Store, error) {
	return snapshot.OpenExisting(ctx, b.nc, ledgerStream)
}

// ReadCheckpoints opens the checkpoint stream of a ledger stream read-only
// (checkpoint.ErrNone if there is none).
func (b *Backend) ReadCheckpoints(ctx context.Context, ledgerStream string) (*checkpoint.Store, error) {
	return checkpoint.OpenExisting(ctx, b.nc, ledgerStream)
}

// OpenTiles opens the Merkle tile bucket of a ledger stream.
func (b *Backend) OpenTiles(ctx context.Context, ledgerStream string) (*checkpoint.Tiles, error) {
	return checkpoint.OpenTiles(ctx, b.nc, ledgerStream, b.replicas)
}

// OpenLeases opens the lease bucket of a ledger stream, whose entries live
// ttl after their last write.
func (b *Backend) OpenLeases(ctx context.Context, ledgerStream string, ttl time.Duration) (*lease.Bucket, error) {
	return lease.Open(ctx, b.nc, ledgerStream, ttl, b.replicas)
}

// OpenSealStore opens the bucket holding the deployment's sealed root key
// file, shared by the instances of a ledger stream.
func (b *Backend) OpenSealStore(ctx context.Context, ledgerStream string) (*sealstore.Store, error) {
	return sealstore.Open(ctx, b.nc, ledgerStream, b.replicas)
}

// Diagnose reads the embedded server's block files of a ledger stream
// directly, while it runs, and reports what they still hold and what is
// lost (salvage.Diagnose); nil with an external deployment, whose files
// are not here.
func (b *Backend) Diagnose(ctx context.Context, ledgerStream string) (*salvage.Report, error) {
	if b.srv == nil {
		return nil, nil
	}
	return salvage.Salvage(ctx, salvage.Request{StoreDir: b.srv.StoreDir(), Stream: ledgerStream, Running: true})
}

// Feed returns the live audit feed of a ledger stream.
// With the embedded server, events no one subscribes to are not sent.
func (b *Backend) Feed(ledgerStream string) *feed.Feed {
	f := feed.New(b.nc, ledgerStream)
	if b.srv != nil {
		f.OnlyHeard(b.srv.HasInterest)
	}
	return f
}

// ClientURL is where NATS clients (audit subscribers) reach the embedded
// server, or "" when it has no listener or the deployment is external.
func (b *Backend) ClientURL() string {
	if b.srv == nil {
		return ""
	}
	return b.srv.ClientURL()
}

// Close closes the material stores, drains the connection and stops the
// embedded server.
func (b *Backend) Close() {
	b.mu.Lock()
	for _, s := range b.stores {
		_ = s.Close()
	}
	b.stores = nil
	b.mu.Unlock()
	if b.nc != nil {
		_ = b.nc.Drain()
		for b.nc.IsDraining() {
			time.Sleep(10 * time.Millisecond)
		}
		b.nc.Close()
	}
	if b.srv != nil {
		b.srv.Shutdown()
	}
}
