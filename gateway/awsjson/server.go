package awsjson

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/gateway/principals"
	"github.com/keyledger/keyledger/gateway/sigv4"
	"github.com/keyledger/keyledger/gateway/throttle"
	"github.com/keyledger/keyledger/gateway/transport"
)

// Limits on what a request may cost before it is authenticated. The
// largest legitimate KMS request (a 32 KiB key policy with tags) is far
// below MaxBodyBytes; SDK requests carry about 1 KiB of headers.
const (
	MaxBodyBytes   = 256 << 10
	MaxHeaderBytes = 8 << 10 // request line and headers; larger gets 431
	// MaxRequestBytes is the most one request can make the server read.
	MaxRequestBytes = MaxHeaderBytes + MaxBodyBytes
)

// Connection defaults (Options overrides them).
const (
	DefaultMaxConnections = 10_000
	// DefaultMaxConnectionsPerClient caps one client address (an IPv6
	// /64); a TLS-terminating proxy in front needs it raised.
	DefaultMaxConnectionsPerClient = 1_000
	// DefaultHealthConnections are kept beyond MaxConnections for health
	// checks (see Limits).
	DefaultHealthConnections = 32
	DefaultHeaderTimeout     = 5 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
)

const (
	contentType    = "application/x-amz-json-1.1"
	targetPrefix   = "TrentService."
	requestTimeout = 30 * time.Second
	readyTimeout   = 3 * time.Second
)

// Server is the HTTP front of a keyservice.Service.
type Server struct {
	app        *fiber.App
	ops        map[string]handler
	principals *principals.Directory
	verifier   sigv4.Verifier
	region     string
	now        func() time.Time
	log        *slog.Logger
	ready      func(context.Context) error
	readyLog   readyLog
	limiter    *throttle.Limiter
	observer   Observer
	names      map[string]string // every operation name AWS KMS has, served or not
	sealed     func() bool
	deadlines  requestDeadlines
	routing    // regions.go
}

// Observer is told of every answered request (metrics). Implementations
// must be cheap and safe for concurrent use.
type Observer interface {
	// Request reports one request: the operation (or "GET <route>" for
	// the HTTP endpoints, "unknown" for an unknown target), the AWS error
	// code it was answered with ("OK" for none) and how long it took.
	Request(operation, code string, took time.Duration)
	// Throttled reports a request refused by the quota of family.
	Throttled(family string)
}

type noObserver struct{}

func (noObserver) Request(string, string, time.Duration) {}
func (noObserver) Throttled(string)                      {}

// Options configure the HTTP front.
type Options struct {
	Principals *principals.Directory // who may call, with their secrets
	Region     string                // the region credentials must be scoped to
	// Now is the clock SigV4 timestamps are checked against (default: the
	// wall clock; callers sign with real time).
	Now    func() time.Time
	Logger *slog.Logger
	// Ready reports whether the instance can serve (GET /readyz); nil
	// means always ready.
	Ready func(context.Context) error
	// Sealed reports whether the root key is sealed: KMS requests then
	// answer ServiceUnavailableException (503, which SDKs retry) before
	// anything is read. nil means never sealed.
	Sealed func() bool
	Limits Limits
	// Limiter throttles requests per account and quota family; nil means
	// no throttling.
	Limiter *throttle.Limiter
	// Observer is told of every request; nil means nobody.
	Observer Observer
}

// Limits bound what connections may hold. Zero fields take the defaults.
//
// Connections are admitted by the listener Listen builds
// (transport.NewLimitListener has the whole design): at most
// MaxConnectionsPerClient from one client address and MaxConnections in
// all; a new connection over either cap takes the slot of the oldest
// connection under it that has not yet delivered a request (which is
// closed), so idle connections cannot lock clients out. When every slot
// holds a connection that has delivered a request, new connections go to
// HealthConnections extra slots on which only GET /healthz and /readyz are
// answered (anything else: ServiceUnavailableException, 503, which SDKs
// retry) and the connection is closed after one answer; beyond those they
// are closed unanswered. A connection must deliver its request line and
// headers within HeaderTimeout of being accepted, or of its request
// starting on a keep-alive connection (with TLS, the handshake has as
// long again); the body then has ReadTimeout.
type Limits struct {
	// MaxConnections caps concurrent connections served normally.
	MaxConnections int
	// MaxConnectionsPerClient caps those of one client address (IPv6: one
	// /64).
	MaxConnectionsPerClient int
	// HealthConnections are slots beyond MaxConnections for health checks.
	HealthConnections int
	// HeaderTimeout bounds reading a request's line and headers (and a TLS
	// handshake), ReadTimeout reading its body, WriteTimeout writing its
	// answer, IdleTimeout a keep-alive connection between requests.
	HeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
}

// withDefaults fills zero fields with the defaults.
func (l Limits) withDefaults() Limits {
	l.MaxConnections = orDefault(l.MaxConnections, DefaultMaxConnections)
	l.MaxConnectionsPerClient = min(orDefault(l.MaxConnectionsPerClient, DefaultMaxConnectionsPerClient), l.MaxConnections)
	l.HealthConnections = orDefault(l.HealthConnections, DefaultHealthConnections)
	l.HeaderTimeout = orDefault(l.HeaderTimeout, DefaultHeaderTimeout)
	l.ReadTimeout = orDefault(l.ReadTimeout, DefaultReadTimeout)
	l.WriteTimeout = orDefault(l.WriteTimeout, DefaultWriteTimeout)
	l.IdleTimeout = orDefault(l.IdleTimeout, DefaultIdleTimeout)
	return l
}

// Listen wraps a raw TCP listener the way the server expects to be
// fed: connection limits (above), then, with cfg, TLS handshakes off the
// accept loop bounded by HeaderTimeout.
func (l Limits) Listen(raw net.Listener, cfg *tls.Config) net.Listener {
	l = l.withDefaults()
	var ln net.Listener = transport.NewLimitListener(raw, transport.ConnLimits{
		Max: l.MaxConnections, PerClient: l.MaxConnectionsPerClient, Health: l.HealthConnections})
	if cfg != nil {
		ln = transport.NewHandshakeListener(ln, cfg, l.HeaderTimeout, l.MaxConnections+l.HealthConnections)
	}
	return ln
}

// New builds the Fiber app for svc.
func New(svc *keyservice.Service, o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Ready == nil {
		o.Ready = func(context.Context) error { return nil }
	}
	if o.Observer == nil {
		o.Observer = noObserver{}
	}
	if o.Sealed == nil {
		o.Sealed = func() bool { return false }
	}
	s := &Server{ops: operations(svc), principals: o.Principals, region: o.Region, now: o.Now, log: o.Logger, ready: o.Ready,
		limiter: o.Limiter, observer: o.Observer, names: map[string]string{}, sealed: o.Sealed}
	for name := range s.ops {
		s.names[name] = name
	}
	for name := range unimplemented {
		s.names[name] = name
	}
	s.app = newApp(o.Limits, s.fiberError)
	s.app.Use(s.refuseFraming, s.gate, s.route)
	s.app.Post("/", s.handle)
	s.app.Get("/healthz", s.healthz)
	s.app.Get("/readyz", s.readyz)
	return s
}

func orDefault[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// Get registers a GET endpoint beside the KMS API (audit, reports) whose
// requests must carry a valid SigV4 signature; h gets the caller. Errors h
// returns are rendered as AWS errors.
func (s *Server) Get(path string, h func(c *fiber.Ctx, caller keyservice.Caller) error) {
	s.app.Get(path, s.signed("GET "+path, h))
}

// Post registers a POST endpoint beside the KMS API (unseal, root key
// rotation), signed like Get's; the signature covers the body.
func (s *Server) Post(path string, h func(c *fiber.Ctx, caller keyservice.Caller) error) {
	s.app.Post(path, s.signed("POST "+path, h))
}

// signed authenticates a request beside the KMS API, calls h with the
// caller and reports the answer under route.
func (s *Server) signed(route string, h func(c *fiber.Ctx, caller keyservice.Caller) error) fiber.Handler {
	return func(c *fiber.Ctx) error {
		start := time.Now()
		reqID := keyservice.NewID()
		if code, msg := refuseEncoding(c); code != "" {
			return s.answer(c, route, start, s.fail(c, reqID, code, msg))
		}
		caller, code, msg := s.authenticate(c)
		if code != "" {
			return s.answer(c, route, start, s.fail(c, reqID, code, msg))
		}
		caller.RequestID = reqID
		c.Set("x-amzn-RequestId", reqID)
		if err := s.admitAudit(route, &caller); err != nil {
			return s.answer(c, route, start, s.fail(c, reqID, string(err.Code), err.Message))
		}
		if err := h(c, caller); err != nil {
			e := keyservice.AsError(err)
			return s.answer(c, route, start, s.fail(c, reqID, string(e.Code), e.Message))
		}
		return s.answer(c, route, start, nil)
	}
}

// Public registers an unauthenticated GET endpoint beside the KMS API for
// fixed, public content (the console's static files). h runs without
// authentication, so it must serve nothing but what is embedded in the
// binary: no key, event or caller-specific state.
func (s *Server) Public(path string, h fiber.Handler) {
	route := "GET " + path
	s.app.Get(path, func(c *fiber.Ctx) error {
		start := time.Now()
		return s.answer(c, route, start, h(c))
	})
}

// Serve accepts connections on ln until Shutdown. Routes registered after
// Serve starts are not reachable.
func (s *Server) Serve(ln net.Listener) error {
	s.app.Use(s.unknownRoute)
	return s.app.Listener(ln)
}

// unknownRoute answers what no route took.
func (s *Server) unknownRoute(c *fiber.Ctx) error {
	return s.fail(c, keyservice.NewID(), codeUnknownOperation, "KMS serves POST / only.")
}

// Shutdown stops accepting and waits for in-flight requests.
func (s *Server) Shutdown(ctx context.Context) error { return s.app.ShutdownWithContext(ctx) }

func (s *Server) handle(c *fiber.Ctx) error {
	start := time.Now()
	reqID := keyservice.NewID()
	opName, ok := strings.CutPrefix(c.Get("X-Amz-Target"), targetPrefix)
	h := s.ops[opName]
	// c.Get's string lives in Fiber's reused buffer: what outlives the
	// request (metric labels, throttle summaries) takes the table's copy.
	label := "unknown" // never a caller-chosen metric label
	if name, known := s.names[opName]; ok && known {
		label = name
	}
	if code, msg := refuseEncoding(c); code != "" {
		return s.answer(c, label, start, s.fail(c, reqID, code, msg))
	}
	if s.sealed() {
		return s.answer(c, label, start, s.fail(c, reqID, "ServiceUnavailableException", "keyledger is sealed; retry once it is unsealed."))
	}
	if !ok || h == nil {
		if unimplemented[opName] {
			return s.answer(c, label, start, s.fail(c, reqID, string(keyservice.CodeUnsupportedOperation), "Operation "+opName+" is not supported by this keyledger version yet."))
		}
		return s.answer(c, label, start, s.fail(c, reqID, codeUnknownOperation, "Unknown operation; X-Amz-Target must be TrentService.<Operation>."))
	}
	ct := c.Get(fiber.HeaderContentType)
	if !strings.HasPrefix(ct, contentType) && !strings.HasPrefix(ct, "application/x-amz-json-1.0") {
		return s.answer(c, label, start, s.fail(c, reqID, codeSerialization, "Content-Type must be "+contentType+"."))
	}
	caller, code, msg := s.authenticate(c)
	if code != "" {
		return s.answer(c, label, start, s.fail(c, reqID, code, msg))
	}
	caller.RequestID = reqID
	ctx := s.deadlines.context(start)
	out, err := h(ctx, caller, c.Request().Body(), s.admit(label, &caller))
	if err != nil {
		e := keyservice.AsError(err)
		return s.answer(c, label, start, s.fail(c, reqID, string(e.Code), e.Message))
	}
	buf := encodeBuffers.Get().(*bytes.Buffer)
	defer putEncodeBuffer(buf)
	body, err := encode(buf, out)
	if err != nil {
		s.log.Error("encoding a response failed", "op", opName, "error", err)
		e := keyservice.AsError(err)
		return s.answer(c, label, start, s.fail(c, reqID, string(e.Code), e.Message))
	}
	c.Set("x-amzn-RequestId", reqID)
	c.Set(fiber.HeaderContentType, contentType)
	c.Response().SetBody(body) // copies (c.Send would keep body, which goes back to the pool)
	return s.answer(c, label, start, nil)
}

// encode writes a response as encoding/json marshals it into buf and
// returns its bytes (valid until buf is reused): json.Marshal's output
// without its allocation and copy of every body.
func encode(buf *bytes.Buffer, out any) ([]byte, error) {
	buf.Reset()
	enc := json.NewEncoder(buf)
	if err := enc.Encode(out); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil // Encode ends a value with a newline
}

// encodeBuffers holds response buffers; one larger than maxPooledBuffer
// (a 32 KiB key policy, a long listing) is dropped rather than kept.
var encodeBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledBuffer = 64 << 10

func putEncodeBuffer(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBuffer {
		encodeBuffers.Put(b)
	}
}

// answer reports a finished request to the observer, with the AWS error
// code it was answered with, and passes err on.
func (s *Server) answer(c *fiber.Ctx, operation string, start time.Time, err error) error {
	code := "OK"
	if t := c.Response().Header.Peek("X-Amzn-ErrorType"); len(t) > 0 {
		code = string(t) // one of this package's or keyservice's fixed codes
	}
	s.observer.Request(operation, code, time.Since(start))
	return err
}

// authenticate verifies the request's SigV4 signature against the
// principal's secret and returns the caller, or an AWS error code and
// message.
func (s *Server) authenticate(c *fiber.Ctx) (keyservice.Caller, string, string) {
	auth, err := sigv4.Parse(c.Get(fiber.HeaderAuthorization))
	if err != nil {
		if errors.Is(err, sigv4.ErrMissing) {
			return keyservice.Caller{}, codeMissingAuth, "Missing Authentication Token"
		}
		return keyservice.Caller{}, codeIncompleteSig, err.Error()
	}
	var unsigned error
	c.Request().Header.VisitAll(func(k, _ []byte) {
		if unsigned == nil && sigv4.MustSign(string(k)) {
			unsigned = auth.CheckSigned(string(k))
		}
	})
	if unsigned != nil {
		return keyservice.Caller{}, codeInvalidSignature, unsigned.Error()
	}
	p, secretKey, ok := s.principals.Lookup(auth.AccessKeyID)
	// keyledger issues no temporary credentials: a session token cannot be valid.
	if !ok || c.Get("X-Amz-Security-Token") != "" {
		return keyservice.Caller{}, codeUnrecognizedClient, "The security token included in the request is invalid."
	}
	path := c.Path()
	if q := c.Request().URI().QueryString(); len(q) > 0 {
		path += "?" + string(q)
	}
	req := sigv4.Request{Method: c.Method(), Path: path, Body: c.Request().Body(), Header: func(name string) string {
		return c.Get(name)
	}}
	if err := s.verifier.Verify(auth, secretKey, s.region, "kms", req, s.now()); err != nil {
		var inc *sigv4.IncompleteError
		if errors.As(err, &inc) {
			return keyservice.Caller{}, codeIncompleteSig, inc.Reason
		}
		return keyservice.Caller{}, codeInvalidSignature, err.Error()
	}
	return keyservice.Caller{
		AccessKeyID:  strings.Clone(auth.AccessKeyID),
		PrincipalARN: p.ARN,
		Account:      p.Account,
		Identity:     p.Policies,
		SourceIP:     c.IP(),
		UserAgent:    strings.Clone(c.Get(fiber.HeaderUserAgent)),
	}, "", ""
}

func (s *Server) fail(c *fiber.Ctx, reqID, code, msg string) error {
	body, _ := json.Marshal(errorBody{Type: code, Message: msg})
	c.Set("x-amzn-RequestId", reqID)
	c.Set("X-Amzn-ErrorType", code)
	c.Set(fiber.HeaderContentType, contentType)
	return c.Status(status(code)).Send(body)
}

// refuseEncoding refuses a compressed body before anything reads it. AWS
// KMS takes no compressed request bodies, and Fiber's Ctx.Body would
// inflate one (a 200 KB gzip bomb is gigabytes) before the signature is
// checked; this package reads only the raw body.
func refuseEncoding(c *fiber.Ctx) (string, string) {
	ce := c.Request().Header.Peek(fiber.HeaderContentEncoding)
	if len(ce) == 0 || strings.EqualFold(string(ce), "identity") {
		return "", ""
	}
	return codeSerialization, "Content-Encoding is not supported: AWS KMS takes uncompressed request bodies."
}

// healthz answers while the process serves HTTP; it needs no credentials
// and says nothing else.
func (s *Server) healthz(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(fiber.StatusOK).SendString("ok\n")
}

// readyz answers 200 when the instance can serve requests and 503 when it
// cannot. Why it is not ready goes to the log, not to the unauthenticated
// caller.
func (s *Server) readyz(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		s.readyLog.notReady(s.log, err)
		return c.Status(fiber.StatusServiceUnavailable).SendString("not ready\n")
	}
	s.readyLog.isReady(s.log)
	return c.Status(fiber.StatusOK).SendString("ready\n")
}

// notReadyLogEvery bounds how often /readyz logs that the instance is not
// ready while it stays so: a load balancer asks every second or so, and a
// partition or a full disk can last hours.
const notReadyLogEvery = 10 * time.Second

// readyLog reports /readyz's answers: the first refusal at once, then at
// most one every notReadyLogEvery with how many were not logged, and the
// return to ready once.
type readyLog struct {
	mu     sync.Mutex
	down   bool
	since  time.Time // the first refusal of this spell
	logged time.Time
	quiet  int
}

func (r *readyLog) notReady(log *slog.Logger, reason error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if r.down && now.Sub(r.logged) < notReadyLogEvery {
		r.quiet++
		return
	}
	log.Warn("not ready", "reason", reason, "not_logged_since_last", r.quiet)
	if !r.down {
		r.since = now
	}
	r.down, r.logged, r.quiet = true, now, 0
}

func (r *readyLog) isReady(log *slog.Logger) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		log.Info("ready again", "not_ready_for", time.Since(r.since).Round(time.Millisecond))
		r.down, r.quiet = false, 0
	}
}

// fiberError renders Fiber's own errors (body too large, malformed HTTP) in
// AWS's shape.
func (s *Server) fiberError(c *fiber.Ctx, err error) error {
	var fe *fiber.Error
	if errors.As(err, &fe) && fe.Code == fiber.StatusRequestEntityTooLarge {
		return s.fail(c, keyservice.NewID(), string(keyservice.CodeValidation), "The request body is larger than the service accepts.")
	}
	if errors.As(err, &fe) && fe.Code == fiber.StatusRequestHeaderFieldsTooLarge {
		return s.fail(c, keyservice.NewID(), codeSerialization, "The request headers are larger than the service accepts.")
	}
	if errors.As(err, &fe) && fe.Code == fiber.StatusRequestTimeout {
		// A connection that sent no whole request within the header
		// timeout is closed unanswered: often an HTTP client's spare
		// connection, idle in its pool, which would read an answer it
		// never asked for as the answer to its next request.
		_ = c.Context().Conn().Close()
		return nil
	}
	s.log.Warn("http error", "error", err)
	return s.fail(c, keyservice.NewID(), codeSerialization, "The request could not be read.")
}
