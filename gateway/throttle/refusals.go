package throttle

import (
	"context"
	"slices"
	"strings"
	"time"
)

// Request identifies a throttled request for the audit: who sent what.
type Request struct {
	Operation, PrincipalARN, AccessKeyID, SourceIP, UserAgent, RequestID string
}

// Summary stands for the requests of one account and family that were
// throttled between From and To: Count of them, the first of which was
// First.
type Summary struct {
	Account, Family string
	Quota           float64
	Count           int
	From, To        time.Time
	First           Request
}

// Refused notes a throttled request, to be summarised by the next Flush.
// Recording each throttled request in the ledger would cost a ledger append
// per refusal and so defeat the throttle; one summary per account and
// family per interval bounds that cost.
func (l *Limiter) Refused(account, family string, r Request) {
	now := l.cfg.Now()
	k := bucketKey{account, family}
	l.refMu.Lock()
	defer l.refMu.Unlock()
	s := l.refusals[k]
	if s == nil {
		s = &Summary{Account: account, Family: family, Quota: l.Quota(account, family), From: now, First: r}
		l.refusals[k] = s
	}
	s.Count++
	s.To = now
}

// Flush returns the summaries of the requests refused since the last Flush,
// by account and family, and starts new ones.
func (l *Limiter) Flush() []Summary {
	l.refMu.Lock()
	pending := l.refusals
	l.refusals = map[bucketKey]*Summary{}
	l.refMu.Unlock()
	out := make([]Summary, 0, len(pending))
	for _, s := range pending {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b Summary) int {
		if c := strings.Compare(a.Account, b.Account); c != 0 {
			return c
		}
		return strings.Compare(a.Family, b.Family)
	})
	return out
}

// Report hands the summaries to record every interval until ctx ends, then
// once more for what was refused meanwhile.
func (l *Limiter) Report(ctx context.Context, interval time.Duration, record func(Summary)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			for _, s := range l.Flush() {
				record(s)
			}
			return
		case <-t.C:
			for _, s := range l.Flush() {
				record(s)
			}
		}
	}
}
