package keyservice

import (
	"context"
	"strconv"
	"time"

	"github.com/keyledger/keyledger/ledger/event"
)

// Throttled describes requests of one account refused by one quota family
// during an interval; First is the first of them.
type Throttled struct {
	Account, Family string
	Quota           float64 // requests per second
	Count           int
	From, To        time.Time
	First           Caller
	Operation       string // the first request's operation
}

// RecordThrottled appends one refused event standing for every request the
// summary covers: the first request's actor and operation, the
// ThrottlingException it was answered with, and the count and interval in
// its parameters. Throttled requests are answered before this is
// recorded: waiting for an append per throttled request is the load the
// throttle sheds.
func (s *Service) RecordThrottled(ctx context.Context, t Throttled) error {
	ev := s.newEvent(t.First, t.Operation)
	ev.Account = t.Account
	ev.Error = &event.Failure{Code: "ThrottlingException",
		Message: "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls.",
		Reason:  "quota " + t.Family + " exceeded; this event stands for " + strconv.Itoa(t.Count) + " throttled requests"}
	ev.Body = &event.APICall{Params: map[string]string{
		"throttledRequests": strconv.Itoa(t.Count),
		"quotaFamily":       t.Family,
		"quotaPerSecond":    strconv.FormatFloat(t.Quota, 'f', -1, 64),
		"firstThrottledAt":  t.From.UTC().Format(time.RFC3339Nano),
		"lastThrottledAt":   t.To.UTC().Format(time.RFC3339Nano),
	}}
	return s.record(ctx, ev)
}
