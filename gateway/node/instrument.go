package node

import (
	"context"
	"math"
	"time"

	"github.com/keyledger/keyledger/gateway/awsjson"
	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/gateway/metrics"
	"github.com/keyledger/keyledger/gateway/throttle"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/event"
)

// timedLedger times each append for the metrics.
type timedLedger struct {
	*ledger.Ledger
	m *metrics.Metrics
}

func (t timedLedger) Append(ctx context.Context, ev *event.Event) (event.Record, error) {
	start := time.Now()
	r, err := t.Ledger.Append(ctx, ev)
	if err == nil {
		t.m.Appended(time.Since(start))
	}
	return r, err
}

func (t timedLedger) AppendChange(ctx context.Context, ev *event.Event, at ledger.Positions, keys ...string) (event.Record, error) {
	start := time.Now()
	r, err := t.Ledger.AppendChange(ctx, ev, at, keys...)
	if err == nil {
		t.m.Appended(time.Since(start))
	}
	return r, err
}

// observer is the gateway's view of m (none when m is nil).
func observer(m *metrics.Metrics) awsjson.Observer {
	if m == nil {
		return nil
	}
	return m
}

// scrapeTimeout bounds the one JetStream call a scrape makes.
const scrapeTimeout = 2 * time.Second

// instrument registers the figures the instance keeps with m; they are read
// when scraped.
func (n *Node) instrument(m *metrics.Metrics) {
	m.Gauge("ledger_verified_events", "Events folded by this instance; each was checked (writer signature, hash link) as it was folded. "+
		"keyledger runs no separate background verification: this is the last verified head.",
		func() float64 { return float64(n.Ledger.Head().Count) })
	m.Counter("ledger_quarantined_messages_total", "Ledger messages quarantined (unsigned, unknown writer, bad signature, out of place, not linking).",
		func() float64 { return float64(n.Ledger.Quarantined()) })
	m.Gauge("projection_lag_messages", "Ledger stream messages not yet folded into this instance's projections (NaN if JetStream did not answer).",
		func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
			defer cancel()
			last, err := n.Ledger.LastStreamSeq(ctx)
			if err != nil {
				return math.NaN()
			}
			return float64(last) - float64(min(last, n.Ledger.Head().Seq))
		})
	m.Gauge("checkpoint_age_seconds", "Seconds since this instance stored its newest signed checkpoint (NaN before the first).",
		func() float64 {
			_, at := n.Checkpointer.Last()
			if at.IsZero() {
				return math.NaN()
			}
			return time.Since(at).Seconds()
		})
	m.Gauge("checkpoint_uncovered_events", "Events in the Merkle tree not yet covered by a signed checkpoint of this instance.",
		func() float64 {
			size, _ := n.Checkpointer.Last()
			return float64(n.Checkpointer.Tree().Size() - size)
		})
	m.Gauge("audit_sse_subscribers", "Live Server-Sent Events audit subscribers.",
		func() float64 { return float64(n.hub.Subscribers()) })
	m.Counter("audit_sse_dropped_events_total", "Events not handed to an SSE subscriber that could not keep up (it catches up from the ledger).",
		func() float64 { return float64(n.hub.Dropped()) })
	m.Counter("audit_feed_overflows_total", "Commits the live feed (NATS subjects and SSE) missed because its queue was full; subscribers are told to catch up.",
		func() float64 { return float64(n.live.overflows.Load()) })
	m.Counter("audit_feed_publish_errors_total", "Failed publishes of committed events to the NATS audit subjects.",
		func() float64 { return float64(n.live.errors.Load()) })
	m.Counter("material_cache_hits_total", "Key material uses served from the unwrapped-material cache.",
		func() float64 { h, _ := n.Service.CacheStats(); return float64(h) })
	m.Counter("material_cache_misses_total", "Key material uses that read the material store and unwrapped under the root key.",
		func() float64 { _, miss := n.Service.CacheStats(); return float64(miss) })
}

// reportThrottled records the throttle's refusals in the ledger, one event
// per account and quota family per interval, until ctx ends (and once
// more then, before the ledger closes).
func (n *Node) reportThrottled(ctx context.Context) {
	every := n.cfg.ThrottleReportInterval
	if every <= 0 {
		every = time.Second
	}
	n.cfg.Throttle.Report(ctx, every, func(s throttle.Summary) {
		t := keyservice.Throttled{Account: s.Account, Family: s.Family, Quota: s.Quota, Count: s.Count, From: s.From, To: s.To,
			Operation: s.First.Operation, First: keyservice.Caller{Account: s.Account, PrincipalARN: s.First.PrincipalARN,
				AccessKeyID: s.First.AccessKeyID, SourceIP: s.First.SourceIP, UserAgent: s.First.UserAgent, RequestID: s.First.RequestID}}
		actx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := n.Service.RecordThrottled(actx, t); err != nil {
			n.cfg.Logger.Warn("recording throttled requests in the ledger failed", "account", s.Account, "family", s.Family,
				"count", s.Count, "error", err)
		}
	})
}
