package keyservice

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/event"
)

// State-changing operations stay linearizable across instances (see
// "Ordering" in the package doc). changing runs the part of an operation
// from validation to recording against the ledger's fold positions taken
// before it reads any state; its record and refuse calls append fenced on
// the partitions it read (partitionKeys); if another instance changed any
// of them meanwhile the ledger refuses the append, having folded the
// winner, and the operation runs again against the new state.

// maxChangeAttempts bounds how often one operation is validated again
// after losing a race; past it the caller gets ThrottlingException, as AWS
// answers requests that change one key too fast. Two instances changing
// one key as fast as they can each win about half the races, so a change
// loses 32 in a row about once in 4 billion; measured with 8 clients on 2
// gateways changing 2 keys, 8 attempts left 0.6 % of the changes
// throttled.
const maxChangeAttempts = 32

// CodeThrottling is AWS's retryable answer to requests that come too fast;
// here, a change that kept losing races to other instances' changes of the
// same keys.
const CodeThrottling Code = "ThrottlingException"

var errBusy = &Error{Code: CodeThrottling, Message: "The key is being changed by other requests at the same time. Retry the request."}

// errLostRace is what record returns when another instance's change took
// the place of this one's: nothing was recorded, and changing runs the
// operation again. It never reaches a caller.
var errLostRace = errors.New("keyservice: another instance changed what this change depends on")

// change is one state-changing operation in progress.
type change struct {
	at      ledger.Positions
	touched []string // partition keys read, beyond those its event names
}

type changeCtx struct{}

// changeOf is the change ctx is running, if any.
func changeOf(ctx context.Context) *change {
	c, _ := ctx.Value(changeCtx{}).(*change)
	return c
}

// changing runs fn, a state-changing operation's validation and
// recording, under the service's exclusive lock, again while it loses
// races (errLostRace), at most maxChangeAttempts times.
func changing[T any](ctx context.Context, s *Service, fn func(ctx context.Context) (T, error)) (T, error) {
	return changingAtMost(ctx, s, maxChangeAttempts, fn)
}

// changingAtMost is changing with its own bound on attempts: an operation
// that records many events (a seed) may lose once per event another
// instance records meanwhile, and each loss still leaves it further on.
func changingAtMost[T any](ctx context.Context, s *Service, attempts int, fn func(ctx context.Context) (T, error)) (T, error) {
	release := s.exclusive()
	defer func() { release() }()
	var pause time.Duration
	for attempt := 1; ; attempt++ {
		if d := max(pause, s.ledger.ContentionHold()); d > 0 {
			// Another instance lost a race and has its turn, or won twice
			// running. Wait without the lock: requests that only read
			// state go on meanwhile.
			release()
			time.Sleep(d)
			release = s.exclusive()
		}
		c := &change{at: s.ledger.Positions()}
		out, err := fn(context.WithValue(ctx, changeCtx{}, c))
		if !errors.Is(err, errLostRace) {
			return out, err
		}
		if attempt >= attempts {
			s.log.Warn("a change lost every race to other instances' changes; answered ThrottlingException", "attempts", attempt)
			var zero T
			return zero, errBusy
		}
		if attempt > 1 {
			// Lost twice running: another instance is changing these keys
			// back to back, and trying again at once lands at the same
			// moment of its cycle every time. A pause of random length
			// (at most a few milliseconds) lands anywhere in it.
			pause = time.Duration(rand.Int64N(int64(min(attempt, 8)) * int64(time.Millisecond)))
		}
	}
}

// touch adds partition key p to the change ctx runs (nothing outside one).
func touch(ctx context.Context, p string) {
	if c := changeOf(ctx); c != nil && p != "" && !slices.Contains(c.touched, p) {
		c.touched = append(c.touched, p)
	}
}

// dependOn starts the next step of a change that records several events
// (a seed's entries): what the step's events depend on is p, and what it
// touches from now on, no longer what earlier steps read.
func dependOn(ctx context.Context, p string) {
	if c := changeOf(ctx); c != nil {
		c.touched = append(c.touched[:0], p)
	}
}

// Partition keys (chain.Partition spreads them over the control chains).
func keyPartition(id string) string { return "key/" + id }

func aliasPartition(account, name string) string { return "alias/" + account + "/" + name }

// servicePartition holds changes that name no key or alias.
const servicePartition = "service"

// everyPartition is read by a change that depends on every key.
const everyPartition = ledger.EveryPartition

// touchRef adds the partition of what a KeyId names, found or not (that a
// key does not exist is an answer about it too): a key id or key ARN, an
// alias name or alias ARN.
func (s *Service) touchRef(ctx context.Context, c Caller, ref string) {
	if changeOf(ctx) == nil || ref == "" {
		return
	}
	account, id := c.Account, ref
	if strings.HasPrefix(ref, "arn:") {
		parts := splitARN(ref)
		if len(parts) != 6 {
			return
		}
		account, id = parts[4], parts[5]
		id = strings.TrimPrefix(id, "key/")
	}
	if strings.HasPrefix(id, "alias/") {
		touch(ctx, aliasPartition(account, id))
		if a, ok := s.state.Alias(account, id); ok {
			touch(ctx, keyPartition(a.KeyID))
		}
		return
	}
	touch(ctx, keyPartition(id))
}

// partitionKeys are the partitions ev, recorded by change c, depends on:
// its key's first (its home chain), then everything c read, then what the
// event itself names (an alias; the key an alias left).
func (c *change) partitionKeys(ev *event.Event) []string {
	var keys []string
	add := func(p string) {
		if p != "" && !slices.Contains(keys, p) {
			keys = append(keys, p)
		}
	}
	if ev.KeyID != "" {
		add(keyPartition(ev.KeyID))
	}
	for _, p := range c.touched {
		add(p)
	}
	switch b := ev.Body.(type) {
	case *event.AliasCreated:
		add(aliasPartition(ev.Account, b.AliasName))
	case *event.AliasUpdated:
		add(aliasPartition(ev.Account, b.AliasName))
		add(keyPartition(b.PreviousKeyID))
	case *event.AliasDeleted:
		add(aliasPartition(ev.Account, b.AliasName))
	case *event.APICall:
		if name := b.Params["aliasName"]; name != "" {
			add(aliasPartition(ev.Account, name))
		}
	}
	if len(keys) == 0 || keys[0] == everyPartition {
		keys = append([]string{servicePartition}, keys...) // the home chain
	}
	return keys
}
