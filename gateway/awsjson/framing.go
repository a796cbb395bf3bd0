package awsjson

import (
	"bytes"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/keyledger/keyledger/gateway/keyservice"
)

// Request framing. fasthttp reads a request that carries both
// Content-Length and Transfer-Encoding as chunked and forgets the
// Content-Length; a proxy in front that honours Content-Length instead sees
// a different request boundary, and what it forwards as one request's body
// is answered here as a second, pipelined request (request smuggling).
// RFC 9112 §6.3 lets a server reject such a message and says it ought to
// be handled as an error and the connection closed. keyledger does so with
// 400, before the body is read, for:
//
//   - Content-Length together with Transfer-Encoding;
//   - a Transfer-Encoding other than exactly "chunked" (fasthttp reads any
//     value but "identity" as chunked, e.g. "xchunked" or "chunked, gzip");
//   - Content-Length given twice with different values.
//
// The check runs in fasthttp's HeaderReceived hook, which sees the raw
// header lines before the body is read. The hook cannot answer, so it
// makes the request bodiless and closing, and marks it with a header only
// the hook sets (a client's copy is removed first); the first handler
// answers a marked request.
const framingMark = "X-Keyledger-Refused-Framing"

// headerReceived is fasthttp's HeaderReceived hook: it refuses ambiguous
// framing (above) and gives the body the full read timeout once the
// header has come (the header itself has only the short header timeout,
// see Limits.HeaderTimeout).
func headerReceived(readTimeout time.Duration) func(*fasthttp.RequestHeader) fasthttp.RequestConfig {
	return func(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
		h.Del(framingMark)
		if ambiguousFraming(h.RawHeaders()) {
			h.SetContentLength(0) // read no body: it is not known where it ends
			h.SetConnectionClose()
			h.Set(framingMark, "1")
		}
		return fasthttp.RequestConfig{ReadTimeout: readTimeout}
	}
}

// ambiguousFraming reports whether raw header lines frame the body in a
// way two HTTP implementations may read differently.
func ambiguousFraming(raw []byte) bool {
	var contentLength []byte
	lengths, encodings := 0, 0
	for len(raw) > 0 {
		var line []byte
		line, raw, _ = bytes.Cut(raw, []byte("\n"))
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		name = bytes.TrimSpace(name)
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte(fiber.HeaderContentLength)):
			if lengths > 0 && !bytes.Equal(value, contentLength) {
				return true
			}
			lengths++
			contentLength = value
		case bytes.EqualFold(name, []byte(fiber.HeaderTransferEncoding)):
			encodings++
			if encodings > 1 || !bytes.EqualFold(value, []byte("chunked")) {
				return true
			}
		}
	}
	return lengths > 0 && encodings > 0
}

// refuseFraming answers a request headerReceived marked, and passes
// every other request on.
func (s *Server) refuseFraming(c *fiber.Ctx) error {
	if len(c.Request().Header.Peek(framingMark)) == 0 {
		return c.Next()
	}
	c.Set(fiber.HeaderConnection, "close")
	return s.answer(c, "unknown", time.Now(), s.fail(c, keyservice.NewID(), codeSerialization,
		"The request's body framing is ambiguous (Content-Length with Transfer-Encoding, a Transfer-Encoding other than "+
			"chunked, or differing Content-Lengths); refused, and the connection is closed."))
}
