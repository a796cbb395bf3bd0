// Package jsretry retries JetStream administration calls that time out
// while a cluster elects leaders (after start-up or the loss of a node),
// or that a cluster refuses for now: no peers to place a replicated
// stream on (a peer not yet seen as online), or JetStream temporarily
// unavailable.
package jsretry

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Attempts is how many times a call is tried.
const Attempts = 5

// Do runs fn until it succeeds, fails with something other than a timeout
// or a cluster's passing refusal, or has been tried Attempts times; each
// try gets its own 5 s deadline.
func Do[T any](ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	var v T
	var err error
	for attempt := 1; attempt <= Attempts; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		v, err = fn(cctx)
		cancel()
		if err == nil || !errors.Is(err, context.DeadlineExceeded) && !passing(err) || ctx.Err() != nil {
			return v, err
		}
		time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
	}
	return v, err
}

// JetStream error codes of a cluster still forming or electing (nats-server
// JSClusterNoPeersErrF, JSClusterNotAvailErr), which nats.go does not name.
const (
	errNoPeers      jetstream.ErrorCode = 10005
	errNotAvailable jetstream.ErrorCode = 10008
)

// passing reports a refusal that passes once the cluster has formed.
func passing(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == errNoPeers || apiErr.ErrorCode == errNotAvailable)
}
