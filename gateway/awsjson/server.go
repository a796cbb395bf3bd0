package awsjson

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/gateway/principals"
	"github.com/keyledger/keyledger/gateway/sigv4"
)

// MaxBodyBytes bounds a request body; the largest legitimate KMS request
// (a 32 KiB key policy with tags) is far below it.
const MaxBodyBytes = 256 << 10

const (
	contentType    = "application/x-amz-json-1.1"
	targetPrefix   = "TrentService."
	requestTimeout = 30 * time.Second
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
}

// Options configure the HTTP front.
type Options struct {
	Principals *principals.Directory // who may call, with their secrets
	Region     string                // the region credentials must be scoped to
	// Now is the clock SigV4 timestamps are checked against (default: the
	// wall clock; callers sign with real time).
	Now    func() time.Time
	Logger *slog.Logger
}

// New builds the Fiber app for svc.
func New(svc *keyservice.Service, o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{ops: operations(svc), principals: o.Principals, region: o.Region, now: o.Now, log: o.Logger}
	s.app = fiber.New(fiber.Config{
		AppName:               "keyledger",
		DisableStartupMessage: true,
		BodyLimit:             MaxBodyBytes,
		ReadTimeout:           60 * time.Second,
		WriteTimeout:          60 * time.Second,
		IdleTimeout:           120 * time.Second,
		ErrorHandler:          s.fiberError,
	})
	s.app.Post("/", s.handle)
	return s
}

// Get registers a GET endpoint beside the KMS API (audit, reports) whose
// requests must carry a valid SigV4 signature; h gets the caller. Errors h
// returns are rendered as AWS errors.
func (s *Server) Get(path string, h func(c *fiber.Ctx, caller keyservice.Caller) error) {
	s.app.Get(path, func(c *fiber.Ctx) error {
		reqID := keyservice.NewID()
		caller, code, msg := s.authenticate(c)
		if code != "" {
			return s.fail(c, reqID, code, msg)
		}
		caller.RequestID = reqID
		c.Set("x-amzn-RequestId", reqID)
		if err := h(c, caller); err != nil {
			e := keyservice.AsError(err)
			return s.fail(c, reqID, string(e.Code), e.Message)
		}
		return nil
	})
}

// Serve accepts connections on ln until Shutdown. Routes registered after
// Serve starts are not reachable.
func (s *Server) Serve(ln net.Listener) error {
	s.app.Use(func(c *fiber.Ctx) error {
		return s.fail(c, keyservice.NewID(), codeUnknownOperation, "KMS serves POST / only.")
	})
	return s.app.Listener(ln)
}

// Shutdown stops accepting and waits for in-flight requests.
func (s *Server) Shutdown(ctx context.Context) error { return s.app.ShutdownWithContext(ctx) }

func (s *Server) handle(c *fiber.Ctx) error {
	reqID := keyservice.NewID()
	opName, ok := strings.CutPrefix(c.Get("X-Amz-Target"), targetPrefix)
	h := s.ops[opName]
	if !ok || h == nil {
		if unimplemented[opName] {
			return s.fail(c, reqID, string(keyservice.CodeUnsupportedOperation), "Operation "+opName+" is not supported by this keyledger version yet.")
		}
		return s.fail(c, reqID, codeUnknownOperation, "Unknown operation; X-Amz-Target must be TrentService.<Operation>.")
	}
	ct := c.Get(fiber.HeaderContentType)
	if !strings.HasPrefix(ct, contentType) && !strings.HasPrefix(ct, "application/x-amz-json-1.0") {
		return s.fail(c, reqID, codeSerialization, "Content-Type must be "+contentType+".")
	}
	caller, code, msg := s.authenticate(c)
	if code != "" {
		return s.fail(c, reqID, code, msg)
	}
	caller.RequestID = reqID
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	out, err := h(ctx, caller, c.Body())
	if err != nil {
		e := keyservice.AsError(err)
		return s.fail(c, reqID, string(e.Code), e.Message)
	}
	body, err := json.Marshal(out)
	if err != nil {
		s.log.Error("encoding a response failed", "op", opName, "error", err)
		e := keyservice.AsError(err)
		return s.fail(c, reqID, string(e.Code), e.Message)
	}
	c.Set("x-amzn-RequestId", reqID)
	c.Set(fiber.HeaderContentType, contentType)
	return c.Send(body)
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
	p, secretKey, ok := s.principals.Lookup(auth.AccessKeyID)
	// keyledger issues no temporary credentials: a session token cannot be valid.
	if !ok || c.Get("X-Amz-Security-Token") != "" {
		return keyservice.Caller{}, codeUnrecognizedClient, "The security token included in the request is invalid."
	}
	path := c.Path()
	if q := c.Request().URI().QueryString(); len(q) > 0 {
		path += "?" + string(q)
	}
	req := sigv4.Request{Method: c.Method(), Path: path, Body: c.Body(), Header: func(name string) string {
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

// fiberError renders Fiber's own errors (body too large, malformed HTTP) in
// AWS's shape.
func (s *Server) fiberError(c *fiber.Ctx, err error) error {
	var fe *fiber.Error
	if errors.As(err, &fe) && fe.Code == fiber.StatusRequestEntityTooLarge {
		return s.fail(c, keyservice.NewID(), string(keyservice.CodeValidation), "The request body is larger than the service accepts.")
	}
	s.log.Warn("http error", "error", err)
	return s.fail(c, keyservice.NewID(), codeSerialization, "The request could not be read.")
}
