package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
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
func instanceName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "keyledger"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}
