package awsjson

import (
	"strings"
	"sync"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// Regions. One process can serve several AWS regions on one listener: each
// region has its own Server (its own service, ledger, quotas and audit
// endpoints), and the Server that owns the listener (the front) hands every
// request whose SigV4 credential scope names another served region to that
// region's Server, whole. Unsigned requests (health checks, the console's
// static files) and requests scoped to a region nobody here serves stay with
// the front, whose verification then answers as AWS does for a foreign
// scope: InvalidSignatureException, "Credential should be scoped to a valid
// region, not '…'." The scope is read before anything is authenticated, but
// only to pick whose verifier authenticates: a request routed by a forged
// scope fails that verification exactly as it would at the front.

// Route makes s the front of a multi-region process: requests scoped to a
// region in others are answered by that region's Server. Call it before
// Serve; the routed Servers are never served themselves.
func (s *Server) Route(others map[string]*Server) {
	s.regions = map[string]*Server{}
	for region, o := range others {
		if region != s.region && o != nil && o != s {
			s.regions[region] = o
		}
	}
}

// route is the front's first gate after the connection checks.
func (s *Server) route(c *fiber.Ctx) error {
	if len(s.regions) == 0 {
		return c.Next()
	}
	region := scopeRegion(c.Get(fiber.HeaderAuthorization))
	if region == "" || region == s.region {
		return c.Next()
	}
	other := s.regions[region]
	if other == nil {
		return c.Next()
	}
	other.handler()(c.Context())
	return nil
}

// handler is the routed Server's request handler: its own Fiber app, with
// the catch-all that Serve would have added.
func (s *Server) handler() fasthttp.RequestHandler {
	s.routedOnce.Do(func() {
		s.app.Use(s.unknownRoute)
		s.routed = s.app.Handler()
	})
	return s.routed
}

// scopeRegion is the region of an Authorization header's credential scope
// (Credential=<key>/<date>/<region>/<service>/aws4_request), or "".
func scopeRegion(auth string) string {
	_, rest, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, ", "); i >= 0 {
		rest = rest[:i]
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 5 {
		return ""
	}
	return parts[2]
}

// routing is the state Route and handler keep on a Server.
type routing struct {
	regions    map[string]*Server // the front's: region → its Server
	routedOnce sync.Once
	routed     fasthttp.RequestHandler
}
