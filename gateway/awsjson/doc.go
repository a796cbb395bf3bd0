// Package awsjson serves the AWS KMS JSON 1.1 protocol on Fiber: POST / with
// X-Amz-Target: TrentService.<Operation>, JSON bodies with base64 blobs and
// epoch-second timestamps, and errors as {"__type","message"} with AWS's
// HTTP statuses (5xx only for server faults, so SDKs retry those).
//
// It and package auditapi (whose handlers it hosts) are the only packages
// that touch *fiber.Ctx; tests/arch_test.go holds the rest of the gateway
// to that. Request bytes are decoded
// into fresh values inside the handler (Fiber reuses its buffers), and the
// service gets a context with the gateway's own deadline. Error messages
// come from the service's *keyservice.Error or from this package's fixed
// texts; decoder errors are never echoed, since they may quote input.
//
// Connections: Limits.Listen builds the listener the server runs on
// (per-client and total caps where idle connections give way, health-check
// slots, a short header timeout; see Limits), and every request passes
// two gates before routing: refuseFraming (ambiguous Content-Length /
// Transfer-Encoding, framing.go) and gate (marks the connection as having
// delivered a request; health checks only on a health slot).
package awsjson
