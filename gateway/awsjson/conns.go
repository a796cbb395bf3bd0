package awsjson

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/gateway/transport"
)

// newApp is the Fiber app both servers (the start-up responder and the
// real one) run on, within l.
func newApp(l Limits, errorHandler fiber.ErrorHandler) *fiber.App {
	l = l.withDefaults()
	app := fiber.New(fiber.Config{
		AppName:               "keyledger",
		DisableStartupMessage: true,
		BodyLimit:             MaxBodyBytes,
		ReadBufferSize:        MaxHeaderBytes,
		// The listener (Limits.Listen) decides who is admitted; fasthttp's
		// own cap, which answers 503 from its accept loop, stays above it
		// as a backstop.
		Concurrency: l.MaxConnections + l.HealthConnections + 1,
		// fasthttp's read timeout runs from the start of a request; it is
		// the header's, and headerReceived gives the body ReadTimeout.
		ReadTimeout:  l.HeaderTimeout,
		WriteTimeout: l.WriteTimeout,
		IdleTimeout:  l.IdleTimeout,
		ErrorHandler: errorHandler,
	})
	app.Server().HeaderReceived = headerReceived(l.ReadTimeout)
	return app
}

// gate marks the request's connection as having delivered a request (it
// no longer gives way to new connections), and on a health-check slot
// answers only GET /healthz and /readyz, then closes the connection.
func (s *Server) gate(c *fiber.Ctx) error {
	if !transport.Served(c.Context().Conn()) {
		return c.Next()
	}
	c.Context().SetConnectionClose()
	if c.Method() == fiber.MethodGet && (c.Path() == "/healthz" || c.Path() == "/readyz") {
		return c.Next()
	}
	return s.answer(c, "unknown", time.Now(), s.fail(c, keyservice.NewID(), "ServiceUnavailableException",
		"keyledger has no free connection for this request; retry."))
}
