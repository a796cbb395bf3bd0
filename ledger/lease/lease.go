// Package lease holds named leases in a JetStream key-value bucket beside
// the ledger (replicated like it): one holder at a time per name, kept by
// renewing within the bucket's TTL, lost when the holder stops renewing —
// the server removes an entry TTL after its last write, whatever became of
// the holder — or when it releases the lease. Every write is conditional on
// the entry's revision (JetStream's expected-last-subject-sequence), so two
// instances never both acquire, and a holder whose lease expired and was
// taken cannot renew it.
//
// A lease alone does not stop a holder that was paused past its TTL from
// acting on what it believed before: what it acts on must check a fencing
// token. Token is the entry's revision when the lease was acquired,
// unique per acquisition of a bucket (revisions only grow); the scheduler
// records it in the ledger and conditions its appends on it (see
// gateway/keyservice).
//
// Times are the server's for expiry and the holder's own (monotonic) clock
// for how long it may act: a holder counts its lease as valid until TTL
// after it sent its last successful write, which the server can only have
// stored later. A Lease is not safe for concurrent use; a Bucket is.
package lease

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/internal/jsretry"
	"github.com/keyledger/keyledger/ledger/internal/streamname"
)

// Errors callers branch on.
var (
	// ErrHeld means another instance holds the lease.
	ErrHeld = errors.New("lease: held by another instance")
	// ErrLost means the lease expired or was taken since it was last
	// renewed: the holder must stop acting under it.
	ErrLost = errors.New("lease: lost")
)

// Bucket holds the leases of one ledger stream.
type Bucket struct {
	kv  jetstream.KeyValue
	ttl time.Duration
}

// Open creates or opens the lease bucket of a ledger stream; its entries
// live ttl after their last write.
func Open(ctx context.Context, nc *nats.Conn, ledgerStream string, ttl time.Duration, replicas int) (*Bucket, error) {
	if ttl <= 0 {
		return nil, errors.New("lease: the TTL must be positive")
	}
	if replicas == 0 {
		replicas = 1
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	kv, err := jsretry.Do(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
		return js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      streamname.Or(ledgerStream) + "_LEASES",
			Description: "keyledger: leases (who runs the scheduler)",
			History:     1,
			TTL:         ttl,
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("lease: bucket: %w", err)
	}
	return &Bucket{kv: kv, ttl: ttl}, nil
}

// TTL is how long an entry lives after its last write.
func (b *Bucket) TTL() time.Duration { return b.ttl }

// Lease is one acquired lease.
type Lease struct {
	b      *Bucket
	name   string
	holder string
	token  uint64    // revision at acquisition
	rev    uint64    // revision of the last write
	valid  time.Time // until when the holder may count on it
}

// Acquire takes the lease name for holder if nobody holds it (it was never
// taken, was released, or expired); ErrHeld if somebody else does. A lease
// that names holder already was held by an earlier run of this holder
// (killed before it could release it): it is taken over at once, under a
// new token, rather than after it expires. So a holder name must belong to
// one running process at a time (the embedded deployment's data directory
// lock makes it so); a name shared by two live processes would have them
// take the lease from each other, each then refused by its fence.
func (b *Bucket) Acquire(ctx context.Context, name, holder string) (*Lease, error) {
	sent := time.Now()
	rev, err := b.kv.Create(ctx, name, []byte(holder))
	if errors.Is(err, jetstream.ErrKeyExists) {
		cur, curRev, gerr := b.Holder(ctx, name)
		if gerr != nil || cur != holder {
			return nil, ErrHeld
		}
		rev, err = b.kv.Update(ctx, name, []byte(holder), curRev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || isWrongLastSeq(err) {
			return nil, ErrHeld
		}
	}
	if err != nil {
		return nil, fmt.Errorf("lease: acquiring %s: %w", name, err)
	}
	return &Lease{b: b, name: name, holder: holder, token: rev, rev: rev, valid: sent.Add(b.ttl)}, nil
}

// Holder returns who holds the lease name and its current revision; ""
// when nobody does.
func (b *Bucket) Holder(ctx context.Context, name string) (string, uint64, error) {
	e, err := b.kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, err
	}
	return string(e.Value()), e.Revision(), nil
}

// Token is the lease's fencing token: the revision it was acquired at.
func (l *Lease) Token() uint64 { return l.token }

// Holder is who holds it.
func (l *Lease) Holder() string { return l.holder }

// Remaining is how long the holder may still count on the lease without
// renewing it (zero or less: it must not).
func (l *Lease) Remaining() time.Duration { return time.Until(l.valid) }

// Renew writes the lease again, conditional on its last revision, so it
// lives another TTL; ErrLost if it expired or was taken meanwhile.
func (l *Lease) Renew(ctx context.Context) error {
	sent := time.Now()
	rev, err := l.b.kv.Update(ctx, l.name, []byte(l.holder), l.rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		l.valid = time.Time{}
		return ErrLost
	}
	if err != nil {
		return fmt.Errorf("lease: renewing %s: %w", l.name, err)
	}
	l.rev, l.valid = rev, sent.Add(l.b.ttl)
	return nil
}

// Release gives the lease up at once, if it is still this holder's, so
// another instance need not wait for it to expire.
func (l *Lease) Release(ctx context.Context) error {
	l.valid = time.Time{}
	err := l.b.kv.Delete(ctx, l.name, jetstream.LastRevision(l.rev))
	if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !isWrongLastSeq(err) {
		return fmt.Errorf("lease: releasing %s: %w", l.name, err)
	}
	return nil
}

func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
