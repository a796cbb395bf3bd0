// Package metrics exposes keyledger's operational figures in the
// Prometheus text format, on an address of their own (never the API's).
// It owns a private registry: no global state, nothing registered by
// init. Labels are bounded sets the code chooses (operation names the
// gateway serves, AWS error codes, quota families), never caller input,
// account ids or key ids. Safe for concurrent use.
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "keyledger"

// Metrics holds keyledger's metrics.
type Metrics struct {
	reg *prometheus.Registry

	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	throttled  *prometheus.CounterVec
	commitSize prometheus.Histogram
	appendTook prometheus.Histogram

	mu       sync.RWMutex
	observed map[string]prometheus.Observer // operation → its latency histogram
}

// New returns Metrics with the request, throttle and ledger figures and the
// Go runtime and process collectors registered; Gauge and Counter add the
// figures other parts of the instance keep.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), observed: map[string]prometheus.Observer{}}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "requests_total",
		Help: "Requests answered, by operation and AWS error code (OK for success)."}, []string{"operation", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "request_duration_seconds",
		Help:    "Time from reading a request to its answer, by operation (ledger commit included).",
		Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5}}, []string{"operation"})
	m.throttled = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "throttled_requests_total",
		Help: "Requests refused with ThrottlingException, by quota family."}, []string{"family"})
	m.commitSize = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Subsystem: "ledger", Name: "commit_events",
		Help:    "Events per group commit (one JetStream message), as folded by this instance.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512}})
	m.appendTook = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Subsystem: "ledger", Name: "append_duration_seconds",
		Help:    "Time from handing an event to the ledger to its acknowledged commit (queueing, batching, JetStream ack and fsync).",
		Buckets: []float64{.0002, .0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 5}})
	m.reg.MustRegister(m.requests, m.latency, m.throttled, m.commitSize, m.appendTook,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Request counts one answered request and observes its latency.
func (m *Metrics) Request(operation, code string, took time.Duration) {
	m.requests.WithLabelValues(operation, code).Inc()
	m.mu.RLock()
	o := m.observed[operation]
	m.mu.RUnlock()
	if o == nil {
		o = m.latency.WithLabelValues(operation)
		m.mu.Lock()
		m.observed[operation] = o
		m.mu.Unlock()
	}
	o.Observe(took.Seconds())
}

// Throttled counts a request refused by the quota of family.
func (m *Metrics) Throttled(family string) { m.throttled.WithLabelValues(family).Inc() }

// Committed observes the size of one group commit.
func (m *Metrics) Committed(events int) { m.commitSize.Observe(float64(events)) }

// Appended observes how long one ledger append took.
func (m *Metrics) Appended(took time.Duration) { m.appendTook.Observe(took.Seconds()) }

// Gauge registers a figure read when scraped. name is without the
// "keyledger_" prefix.
func (m *Metrics) Gauge(name, help string, read func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, read))
}

// Counter registers a cumulative count read when scraped.
func (m *Metrics) Counter(name, help string, read func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, read))
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Server serves GET /metrics on its own listener.
type Server struct{ srv *http.Server }

// Serve answers /metrics on ln until Shutdown; it returns nil after
// Shutdown.
func (m *Metrics) Serve(ln net.Listener) *Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 8 << 10}}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = ln.Close()
		}
	}()
	return s
}

// Shutdown stops the metrics server.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }
