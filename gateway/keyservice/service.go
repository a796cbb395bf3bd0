package keyservice

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyledger/keyledger/crypto/asymmetric"
	"github.com/keyledger/keyledger/crypto/secret"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/projections/keystate"
)

// Clock tells the time. Tests move it to make deletions fall due.
type Clock interface{ Now() time.Time }

// Ledger appends events and waits until this instance folded them
// (package ledger).
type Ledger interface {
	// Append records an event that changes no key state.
	Append(ctx context.Context, ev *event.Event) (event.Record, error)
	// Positions is where the fold stands, taken before a change reads
	// state; AppendChange records a change validated at those positions,
	// unless a chain of its partition keys moved since (ledger.ErrConflict).
	Positions() ledger.Positions
	AppendChange(ctx context.Context, ev *event.Event, at ledger.Positions, keys ...string) (event.Record, error)
	// ContentionHold is how long the next change should wait to let
	// another instance that lost a race have its turn.
	ContentionHold() time.Duration
	// Sync waits until this instance folded everything stored when it
	// was called: a read after it sees every change acknowledged before.
	Sync(ctx context.Context) error
}

// MaterialStore keeps wrapped key material.
type MaterialStore interface {
	Put(ctx context.Context, id string, wrapped []byte) error
	Get(ctx context.Context, id string) ([]byte, error)
	Destroy(ctx context.Context, id string) error
}

// Config wires a Service.
type Config struct {
	Region    string
	Clock     Clock
	Ledger    Ledger
	State     *keystate.State
	Materials MaterialStore
	RootKey   RootKey
	// Principals says which principals exist, to validate key policies and
	// grants.
	Principals Directory
	// Writers are the ledger's registered writers, and WriterID this
	// instance's (RegisterWriter).
	Writers  WriterRegistry
	WriterID string
	Logger   *slog.Logger
	// OperatorAccount is the account whose principals may run service-wide
	// operations (unsealing, root key rotation), as their identity
	// policies allow; "" means nobody may.
	OperatorAccount string
}

// WriterRegistry is the ledger's view of its writers (ledger.Ledger).
type WriterRegistry interface {
	Registered(id string) bool
	Writers() map[string]string
	Revoked() map[string]chain.Revocation
}

// RootKey wraps and unwraps key material (a rootkey.Key, or a
// *rootkey.Ring of versions that may be sealed).
type RootKey interface {
	WrapMaterial(material secret.Bytes, materialID string) ([]byte, error)
	UnwrapMaterial(wrapped []byte, materialID string) (secret.Bytes, error)
}

// Sealed reports whether the root key is sealed: no key material can be
// used until it is unsealed.
func (s *Service) Sealed() bool {
	r, ok := s.root.(interface{ Sealed() bool })
	return ok && r.Sealed()
}

// Directory answers whether principals exist.
type Directory interface {
	Exists(arn string) bool
	HasAccount(id string) bool
}

// Service implements the AWS KMS operations.
type Service struct {
	region     string
	clock      Clock
	ledger     Ledger
	state      *keystate.State
	materials  MaterialStore
	root       RootKey
	principals Directory
	writers    WriterRegistry
	writerID   string
	log        *slog.Logger
	operator   string // OperatorAccount

	// Failures that come in runs (a full disk refuses every request) are
	// logged once, then summarised every refusalLogInterval.
	appendFailures, internalErrors *burstLog

	mu       sync.RWMutex // see "Ordering" in the package doc
	policies policyCache

	cacheMu sync.RWMutex
	cache   map[string]secret.Bytes           // material id → unwrapped material
	parsed  map[string]*asymmetric.PrivateKey // material id → parsed private key

	cacheHits, cacheMisses atomic.Uint64

	arns arnCache // resolve.go

	syncMu  sync.Mutex // one shared catch-up for lookups that failed (resolve.go)
	syncing *syncCall

	sched      *Scheduler    // nil: RunDue runs unfenced (NewScheduler)
	rotation   *RootRotation // nil: no root key rotation (NewRootRotation)
	replicator *Replicator   // nil: no other region to replicate to (NewReplicator)
	// Materials whose deletion is recorded but whose destruction failed
	// (destroyRecorded): retried by RunDue, and at start-up by Sweep.
	undestroyedMu sync.Mutex
	undestroyed   map[string]bool
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{
		region: cfg.Region, clock: cfg.Clock, ledger: cfg.Ledger,
		state: cfg.State, materials: cfg.Materials, root: cfg.RootKey, principals: cfg.Principals, log: cfg.Logger,
		writers: cfg.Writers, writerID: cfg.WriterID,
		operator:       cfg.OperatorAccount,
		appendFailures: newBurstLog(cfg.Logger, "ledger append failed; request refused", refusalLogInterval),
		internalErrors: newBurstLog(cfg.Logger, "internal error", refusalLogInterval),
		cache:          map[string]secret.Bytes{}, parsed: map[string]*asymmetric.PrivateKey{},
		undestroyed: map[string]bool{},
	}
}

// Region is the region this service serves.
func (s *Service) Region() string { return s.region }

// newEvent starts the event that will record one request.
func (s *Service) newEvent(c Caller, op string) *event.Event {
	ea := &eventAndActor{ // one allocation, on every request
		ev: event.Event{Time: s.clock.Now(), Operation: op, Account: c.Account, Region: s.region},
		actor: event.Actor{AccessKeyID: c.AccessKeyID, PrincipalARN: c.PrincipalARN, SourceIP: c.SourceIP,
			UserAgent: c.UserAgent, RequestID: c.RequestID},
	}
	ea.ev.Actor = &ea.actor
	return &ea.ev
}

type eventAndActor struct {
	ev    event.Event
	actor event.Actor
}

// record appends ev and waits for the ledger. In a change (changing) it
// is appended fenced on what the change read, and a lost race is
// errLostRace: the change runs again. If the ledger cannot take the event
// the request fails with KMSInternalException.
func (s *Service) record(ctx context.Context, ev *event.Event) error {
	_, err := s.recordRec(ctx, ev)
	return err
}

// recordRec is record, returning the stored record.
func (s *Service) recordRec(ctx context.Context, ev *event.Event) (event.Record, error) {
	if ev.Body == nil {
		ev.Body = &event.APICall{}
	}
	var rec event.Record
	var err error
	if c := changeOf(ctx); c != nil {
		keys := c.partitionKeys(ev)
		rec, err = s.ledger.AppendChange(ctx, ev, c.at, keys...)
		if errors.Is(err, ledger.ErrConflict) {
			return rec, errLostRace
		}
		if err == nil {
			c.at = c.at.After(rec, keys...)
		}
	} else {
		rec, err = s.ledger.Append(ctx, ev)
	}
	if revoked(err) {
		return rec, errRevoked
	}
	if notRegistered(err) {
		return rec, errNotRegistered
	}
	if err != nil {
		s.appendFailures.Error("op", ev.Operation, "key", ev.KeyID, "error", err)
		return rec, errInternal
	}
	return rec, nil
}

// refuse records ev as refused with err and returns the AWS error.
func (s *Service) refuse(ctx context.Context, ev *event.Event, err error) error {
	e := AsError(err)
	if (e == errInternal || e == errMaterialUnreadable) && !errors.Is(err, errInternal) {
		s.internalErrors.Error("op", ev.Operation, "key", ev.KeyID, "error", err)
	}
	ev.Error = &event.Failure{Code: string(e.Code), Message: e.Message, Reason: e.Reason}
	if recErr := s.record(ctx, ev); recErr != nil {
		return recErr
	}
	return e
}

func (s *Service) shared() func() {
	s.mu.RLock()
	return s.mu.RUnlock
}

func (s *Service) exclusive() func() {
	s.mu.Lock()
	return s.mu.Unlock
}
