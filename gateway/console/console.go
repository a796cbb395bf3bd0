// Package console serves keyledger's web console at /console/: static
// HTML, CSS and JavaScript embedded in the binary, nothing fetched from
// elsewhere. The console is just another API client: the browser signs
// every request with SigV4 itself (WebCrypto HMAC-SHA256) and calls the
// ordinary KMS and audit APIs, so every console action is authorized by
// the same policies and recorded in the ledger like any other. This
// package adds no authentication path and reads no state: it serves
// fixed files and the region credentials are scoped to.
//
// Every answer carries a strict Content-Security-Policy (scripts and
// styles from the console's own files only, no inline script, requests to
// the same origin only), X-Frame-Options: DENY and Referrer-Policy:
// no-referrer. The files are read-only after Register; safe for
// concurrent use.
package console

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"mime"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/keyledger/keyledger/gateway/awsjson"
)

//go:embed static
var static embed.FS

// Prefix is where the console is served.
const Prefix = "/console/"

// CSP is the console's Content-Security-Policy: its own scripts and styles
// only (no inline script or style element), fetches to the same origin
// only (the APIs), no framing, no form posts, no plugins.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Options configure the console.
type Options struct {
	// Region is the region requests are signed for (the service's).
	Region string
}

type file struct {
	body  []byte
	ctype string
	etag  string
}

// Register serves the console on srv at /console/ (and redirects /console
// there).
func Register(srv *awsjson.Server, o Options) {
	files := load()
	cfg, _ := json.Marshal(map[string]string{"region": o.Region})
	files["config.json"] = newFile("config.json", cfg)
	serve := func(c *fiber.Ctx) error {
		secure(c)
		if !strings.HasPrefix(c.Path(), Prefix) {
			// /console: the files' relative links need the slash.
			return c.Redirect(Prefix, fiber.StatusMovedPermanently)
		}
		name := strings.TrimPrefix(c.Path(), Prefix)
		if name == "" {
			name = "index.html"
		}
		f, ok := files[name]
		if !ok {
			c.Set(fiber.HeaderContentType, "text/plain; charset=utf-8")
			return c.Status(fiber.StatusNotFound).SendString("not found\n")
		}
		c.Set(fiber.HeaderETag, f.etag)
		if c.Get(fiber.HeaderIfNoneMatch) == f.etag {
			return c.SendStatus(fiber.StatusNotModified)
		}
		c.Set(fiber.HeaderContentType, f.ctype)
		return c.Send(f.body)
	}
	srv.Public(Prefix+"*", serve)
	srv.Public("/console", serve)
}

// secure sets the console's security headers.
func secure(c *fiber.Ctx) {
	c.Set("Content-Security-Policy", CSP)
	c.Set(fiber.HeaderXFrameOptions, "DENY")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set("Cross-Origin-Opener-Policy", "same-origin")
	c.Set("Cross-Origin-Resource-Policy", "same-origin")
	c.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
	// Revalidate each time (the ETag makes it cheap): a new binary's
	// console is never mixed with an old one's cached files.
	c.Set(fiber.HeaderCacheControl, "no-cache")
}

// load reads the embedded files once.
func load() map[string]file {
	out := map[string]file{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "static/")
		out[name] = newFile(name, b)
		return nil
	})
	if err != nil {
		panic("console: embedded files unreadable: " + err.Error()) // a build defect
	}
	return out
}

func newFile(name string, b []byte) file {
	sum := sha256.Sum256(b)
	ctype := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) {
	case ".js":
		ctype = "text/javascript; charset=utf-8"
	case ".css":
		ctype = "text/css; charset=utf-8"
	case ".html":
		ctype = "text/html; charset=utf-8"
	case ".json":
		ctype = "application/json"
	case ".svg":
		ctype = "image/svg+xml"
	}
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	return file{body: b, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
}
