package keyservice

import (
	"context"
	"strconv"
	"time"

	"github.com/keyledger/keyledger/gateway/throttle"
	"github.com/keyledger/keyledger/ledger/event"
)

// Throttled describes requests of one account refused by one quota family
// during an interval, or refused by fair sharing under load (Family
// throttle.Overload, Quota 0); First is the first of them.
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
	reason := "quota " + t.Family + " exceeded"
	if t.Family == throttle.Overload {
		reason = "instance overloaded: the account's queue of waiting requests was full"
	}
	ev.Error = &event.Failure{Code: "ThrottlingException",
		Message: "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls.",
		Reason:  reason + "; this event stands for " + strconv.Itoa(t.Count) + " throttled requests"}
	params := map[string]string{
		"throttledRequests": strconv.Itoa(t.Count),
		"quotaFamily":       t.Family,
		"firstThrottledAt":  t.From.UTC().Format(time.RFC3339Nano),
		"lastThrottledAt":   t.To.UTC().Format(time.RFC3339Nano),
	}
	if t.Family != throttle.Overload {
		params["quotaPerSecond"] = strconv.FormatFloat(t.Quota, 'f', -1, 64)
	}
	ev.Body = &event.APICall{Params: params}
	return s.record(ctx, ev)
}
