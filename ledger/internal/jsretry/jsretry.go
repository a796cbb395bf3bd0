// Package jsretry retries JetStream administration calls that time out
// while a cluster elects leaders (after start-up or the loss of a node).
package jsretry

import (
	"context"
	"errors"
	"time"
)

// Attempts is how many times a call is tried.
const Attempts = 5

// Do runs fn until it succeeds, fails with something other than a timeout,
// or has been tried Attempts times; each try gets its own 5 s deadline.
func Do[T any](ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	var v T
	var err error
	for attempt := 1; attempt <= Attempts; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		v, err = fn(cctx)
		cancel()
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			return v, err
		}
		time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
	}
	return v, err
}
