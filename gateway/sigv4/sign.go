package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Header is one request header to sign.
type Header struct{ Name, Value string }

// Credentials sign requests.
type Credentials struct {
	AccessKeyID string
	Secret      string
}

// ErrNoCredentials is what a client answers before sending a request it
// has no credentials to sign: the server would only say that the
// Authorization header is malformed.
var ErrNoCredentials = errors.New("no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")

// Check returns ErrNoCredentials when the access key id or the secret is
// empty.
func (c Credentials) Check() error {
	if c.AccessKeyID == "" || c.Secret == "" {
		return ErrNoCredentials
	}
	return nil
}

// AmzDateFormat is the X-Amz-Date layout.
const AmzDateFormat = "20060102T150405Z"

// Sign returns the Authorization header value for a request with the given
// method, path (no query string), headers (host and x-amz-date included) and
// body. It is what a client computes and what verification recomputes.
func Sign(c Credentials, region, service, method, path string, headers []Header, body []byte, t time.Time) string {
	t = t.UTC()
	scope := t.Format("20060102") + "/" + region + "/" + service + "/aws4_request"
	_, signed := canonicalHeaders(headers)
	sig := signature([]byte(c.Secret), region, service, method, path, headers, body, t)
	return Algorithm + " Credential=" + c.AccessKeyID + "/" + scope + ", SignedHeaders=" + signed + ", Signature=" + sig
}

// signature computes the hex SigV4 signature of a request.
func signature(secretKey []byte, region, service, method, path string, headers []Header, body []byte, t time.Time) string {
	return signWith(signingKey(secretKey, t.Format("20060102"), region, service), region, service, method, path, headers, body, t)
}

// signingKey derives the key of one day's credential scope.
func signingKey(secretKey []byte, date, region, service string) []byte {
	k := mac(append([]byte("AWS4"), secretKey...), date)
	k = mac(k, region)
	k = mac(k, service)
	return mac(k, "aws4_request")
}

// signWith signs a request with a derived signing key. path may carry a
// query string ("/audit?since=1").
func signWith(key []byte, region, service, method, path string, headers []Header, body []byte, t time.Time) string {
	bp := scratch.Get().(*[]byte)
	defer scratch.Put(bp)
	*bp = appendStringToSign((*bp)[:0], region, service, method, path, headers, body, t)
	m := hmac.New(sha256.New, key)
	m.Write(*bp)
	return hex.EncodeToString(m.Sum(nil))
}

// scratch holds the buffers a signature is computed in: a canonical
// request and a string to sign are about 1 KB.
var scratch = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// appendStringToSign appends the string to sign of a request.
func appendStringToSign(dst []byte, region, service, method, path string, headers []Header, body []byte, t time.Time) []byte {
	n := len(dst)
	creq := appendCanonicalRequest(dst, method, path, headers, body)
	creqHash := sha256.Sum256(creq[n:])
	dst = append(creq[:n], Algorithm+"\n"...)
	dst = t.AppendFormat(dst, AmzDateFormat)
	dst = append(dst, '\n')
	dst = t.AppendFormat(dst, "20060102")
	dst = append(append(append(append(dst, '/'), region...), '/'), service...)
	dst = append(dst, "/aws4_request\n"...)
	return hex.AppendEncode(dst, creqHash[:])
}

// appendCanonicalRequest appends a request's canonical form.
func appendCanonicalRequest(dst []byte, method, path string, headers []Header, body []byte) []byte {
	uri, rawQuery, _ := strings.Cut(path, "?")
	dst = append(append(dst, method...), '\n')
	dst = append(append(dst, uri...), '\n')
	dst = append(append(dst, canonicalQuery(rawQuery)...), '\n')
	dst = appendCanonicalHeaders(dst, headers)
	payload := sha256.Sum256(body)
	return hex.AppendEncode(dst, payload[:])
}

// appendCanonicalHeaders appends the canonical headers block and the
// signed-headers line, each ending in a newline: what canonicalHeaders
// returns, without allocating when the names are already lower-case and
// sorted and the values need no folding (as SDKs send them).
func appendCanonicalHeaders(dst []byte, headers []Header) []byte {
	if !inCanonicalOrder(headers) {
		canonical, signed := canonicalHeaders(headers)
		return append(append(append(dst, canonical...), '\n'), signed+"\n"...)
	}
	for _, h := range headers {
		dst = append(append(dst, h.Name...), ':')
		dst = appendFolded(dst, h.Value)
		dst = append(dst, '\n')
	}
	dst = append(dst, '\n')
	for i, h := range headers {
		if i > 0 {
			dst = append(dst, ';')
		}
		dst = append(dst, h.Name...)
	}
	return append(dst, '\n')
}

// inCanonicalOrder reports whether header names are ASCII without upper
// case and strictly ascending.
func inCanonicalOrder(headers []Header) bool {
	for i, h := range headers {
		for j := 0; j < len(h.Name); j++ {
			if c := h.Name[j]; c >= utf8.RuneSelf || 'A' <= c && c <= 'Z' {
				return false
			}
		}
		if i > 0 && headers[i-1].Name >= h.Name {
			return false
		}
	}
	return true
}

// appendFolded appends strings.Join(strings.Fields(v), " "): the value
// trimmed, each run of white space one space.
func appendFolded(dst []byte, v string) []byte {
	space, started := false, false
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c >= utf8.RuneSelf {
			return append(dst, strings.Join(strings.Fields(v), " ")...) // Unicode white space
		}
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case ' ', '\t', '\n', '\v', '\f', '\r':
			space = started
		default:
			if space {
				dst = append(dst, ' ')
				space = false
			}
			dst = append(dst, c)
			started = true
		}
	}
	return dst
}

func canonicalHeaders(headers []Header) (canonical, signed string) {
	hs := make([]Header, len(headers))
	for i, h := range headers {
		hs[i] = Header{Name: strings.ToLower(h.Name), Value: strings.Join(strings.Fields(h.Value), " ")}
	}
	slices.SortFunc(hs, func(a, b Header) int { return strings.Compare(a.Name, b.Name) })
	var cb, sb strings.Builder
	for i, h := range hs {
		cb.WriteString(h.Name + ":" + h.Value + "\n")
		if i > 0 {
			sb.WriteByte(';')
		}
		sb.WriteString(h.Name)
	}
	return cb.String(), sb.String()
}

// canonicalQuery sorts and AWS-encodes a raw query string.
func canonicalQuery(raw string) string {
	if raw == "" {
		return ""
	}
	var pairs []string
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		dk, err1 := url.QueryUnescape(k)
		dv, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			dk, dv = k, v
		}
		pairs = append(pairs, awsEscape(dk)+"="+awsEscape(dv))
	}
	slices.Sort(pairs)
	return strings.Join(pairs, "&")
}

// awsEscape percent-encodes everything but RFC 3986 unreserved characters.
func awsEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

func mac(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
