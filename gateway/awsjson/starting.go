package awsjson

import (
	"context"
	"net"

	"github.com/gofiber/fiber/v2"

	"github.com/keyledger/keyledger/gateway/keyservice"
)

// Starting answers on a listener while the instance starts (the ledger
// replays): GET /healthz is 200, GET /readyz is 503, and every other
// request is ServiceUnavailableException (503), which SDKs retry. The
// same limits as the real server apply; nothing is authenticated or read.
type Starting struct {
	app *fiber.App
	ln  net.Listener
}

// ServeStarting serves the start-up answers on ln (as Limits.Listen made
// it) until Stop.
func ServeStarting(ln net.Listener, limits Limits) *Starting {
	app := newApp(limits, nil)
	front := &Server{observer: noObserver{}}
	app.Use(front.refuseFraming, front.gate)
	app.Get("/healthz", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.SendString("ok\n")
	})
	app.Get("/readyz", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.Status(fiber.StatusServiceUnavailable).SendString("not ready\n")
	})
	app.Use(func(c *fiber.Ctx) error {
		return front.fail(c, keyservice.NewID(), "ServiceUnavailableException", "keyledger is starting; retry shortly.")
	})
	go func() { _ = app.Listener(ln) }()
	return &Starting{app: app, ln: ln}
}

// Stop stops accepting, lets requests in flight finish and closes idle
// connections (clients reconnect to the real server on the same address).
func (s *Starting) Stop(ctx context.Context) error {
	err := s.app.ShutdownWithContext(ctx)
	_ = s.ln.Close() // in case Stop came before the server began accepting
	return err
}
