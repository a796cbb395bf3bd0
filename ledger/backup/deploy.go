package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/keyledger/keyledger/crypto/durable"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/checkpoint"
	"github.com/keyledger/keyledger/ledger/material"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/segment"
	"github.com/keyledger/keyledger/ledger/snapshot"
	"github.com/keyledger/keyledger/ledger/writer"
)

// Deployment is a NATS deployment a restore writes into: its ledger,
// checkpoint and material stores (*backend.Backend).
type Deployment interface {
	OpenLedger(ctx context.Context, cfg ledger.Config) (*ledger.Ledger, error)
	OpenCheckpoints(ctx context.Context, ledgerStream string) (*checkpoint.Store, error)
	OpenMaterials(ctx context.Context, cfg material.Config) (*material.Store, error)
	OpenSnapshots(ctx context.Context, ledgerStream string) (*snapshot.Store, error)
	// ImportAfterBase is ledger.ImportAfterBase on the deployment.
	ImportAfterBase(ctx context.Context, cfg ledger.Config, base segment.Base, tree merkle.Frontier, next func() ([]byte, error)) (chain.Head, error)
	Close()
}

// WriterKeyFile is where a data directory keeps its writer key.
const WriterKeyFile = "writer.key"

// RestoreRequest says where RestoreInto writes a verified backup.
type RestoreRequest struct {
	// DataDir, if set, is a new data directory to restore into: it must not
	// exist or be empty. The restore is built beside it, in DataDir
	// +".restoring", and renamed into place only once verified, so nothing
	// can serve a half-restored directory. Empty: the restore goes into
	// the (empty) deployment Open opens.
	DataDir string
	// Open opens the deployment to write into: with DataDir, the embedded
	// one of the directory being built (dir); otherwise dir is "".
	Open func(dir string) (Deployment, error)
	// Stream is the ledger stream's name.
	Stream string
	// Writer is the deployment's writer key, from escrow: the restored
	// ledger is signed with it, and it is required once the ledger has
	// registered a writer (ledger.ErrImportWriter). With DataDir,
	// WriterKeyFile (its file) is copied into the new directory, where
	// serve looks for it.
	Writer        *writer.Key
	WriterKeyFile string
	Fold          Fold // empty; checks what was restored
	// Rebase restates a snapshot's body for the restored stream (its
	// head's stream sequence, every chain's head there): needed for a
	// backup after removed segments (Target.Rebase; projections/resume's
	// image).
	Rebase func(body []byte, seq uint64, chains map[string]chain.ChainHead) ([]byte, error)
}

// ErrDirNotEmpty means the data directory to restore into already holds
// something: a restore never overwrites a deployment.
var ErrDirNotEmpty = errors.New("backup: the data directory to restore into is not empty")

// RestoreInto writes the verified backup into the deployment req names
// and verifies what was written (Restore). Into a data directory it
// builds the deployment beside it, removes that half-built directory if
// the restore fails, and renames it into place once the restore and its
// verification succeeded and the writer key is beside it.
func (b *Backup) RestoreInto(ctx context.Context, req RestoreRequest) (Result, error) {
	if req.DataDir == "" {
		return b.restoreTo(ctx, req, "")
	}
	if entries, err := os.ReadDir(req.DataDir); err == nil && len(entries) > 0 {
		return Result{}, ErrDirNotEmpty
	}
	building := filepath.Clean(req.DataDir) + ".restoring"
	if err := os.RemoveAll(building); err != nil {
		return Result{}, err
	}
	res, err := b.restoreTo(ctx, req, building)
	if err != nil {
		_ = os.RemoveAll(building)
		return res, err
	}
	if req.WriterKeyFile != "" {
		if err := copyFile(req.WriterKeyFile, filepath.Join(building, WriterKeyFile)); err != nil {
			return res, err
		}
	}
	_ = os.Remove(req.DataDir) // an empty directory, if any
	if err := os.Rename(building, req.DataDir); err != nil {
		return res, err
	}
	return res, durable.SyncDir(filepath.Dir(filepath.Clean(req.DataDir)))
}

// restoreTo restores into the deployment req.Open opens for dir.
func (b *Backup) restoreTo(ctx context.Context, req RestoreRequest, dir string) (Result, error) {
	d, err := req.Open(dir)
	if err != nil {
		return Result{}, err
	}
	defer d.Close()
	cfg := ledger.Config{Stream: req.Stream, Writer: req.Writer}
	t := Target{Fold: req.Fold}
	if b.base == nil {
		if t.Ledger, err = d.OpenLedger(ctx, cfg); err != nil {
			return Result{}, err
		}
	} else {
		// The ledger is created by the import, after its base.
		t.ImportAfterBase = func(ctx context.Context, base segment.Base, tree merkle.Frontier, next func() ([]byte, error)) (*ledger.Ledger, error) {
			if _, err := d.ImportAfterBase(ctx, cfg, base, tree, next); err != nil {
				return nil, err
			}
			return d.OpenLedger(ctx, cfg)
		}
		snaps, err := d.OpenSnapshots(ctx, req.Stream)
		if err != nil {
			return Result{}, err
		}
		t.Snapshots, t.Writer, t.Rebase = snaps, req.Writer, req.Rebase
		if req.Writer == nil {
			return Result{}, fmt.Errorf("%w (the backup continues a base its writers signed)", ledger.ErrImportWriter)
		}
	}
	var err2 error
	if t.Checkpoints, err2 = d.OpenCheckpoints(ctx, req.Stream); err2 != nil {
		return Result{}, err2
	}
	if t.Materials, err2 = d.OpenMaterials(ctx, material.Config{}); err2 != nil {
		return Result{}, err2
	}
	res, err := b.Restore(ctx, t)
	if errors.Is(err, ledger.ErrNotEmpty) {
		return res, errors.New("the target is not empty")
	}
	return res, err
}

// copyFile copies a secret file (a writer key) with mode 0600.
func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	defer clear(data)
	return os.WriteFile(to, data, 0o600)
}
