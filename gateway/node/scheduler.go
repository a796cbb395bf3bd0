package node

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"time"

	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/ledger/lease"
)

// DefaultSchedulerLeaseTTL is how long the scheduler lease outlives its
// holder's last renewal by default: within about this long after an
// instance dies, another runs the scheduler.
const DefaultSchedulerLeaseTTL = 5 * time.Second

// schedulerLeases is the lease bucket as the scheduler uses it: one lease,
// named "scheduler".
type schedulerLeases struct{ b *lease.Bucket }

func (s schedulerLeases) Acquire(ctx context.Context, holder string) (keyservice.HeldLease, error) {
	l, err := s.b.Acquire(ctx, "scheduler", holder)
	if err != nil {
		return nil, err
	}
	return l, nil
}

func (s schedulerLeases) TTL() time.Duration { return s.b.TTL() }

// instanceName is the host name and a random suffix: unique per process,
// readable in the log and the ledger.
func instanceName(dataDir string) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "keyledger"
	}
	if dataDir != "" {
		// The embedded deployment: one process at a time holds the data
		// directory (its lock), so the name stays across restarts and a
		// run after a kill -9 takes its own scheduler lease back at once.
		if abs, err := filepath.Abs(dataDir); err == nil {
			dataDir = abs
		}
		sum := sha256.Sum256([]byte(dataDir))
		return host + "-" + hex.EncodeToString(sum[:4])
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}
