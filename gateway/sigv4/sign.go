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
	"time"
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
	scope := t.Format("20060102") + "/" + region + "/" + service + "/aws4_request"
	canonical, signed := canonicalHeaders(headers)
	payload := sha256.Sum256(body)
	uri, rawQuery, _ := strings.Cut(path, "?")
	creq := method + "\n" + uri + "\n" + canonicalQuery(rawQuery) + "\n" + canonical + "\n" + signed + "\n" + hex.EncodeToString(payload[:])
	creqHash := sha256.Sum256([]byte(creq))
	sts := Algorithm + "\n" + t.Format(AmzDateFormat) + "\n" + scope + "\n" + hex.EncodeToString(creqHash[:])
	return hex.EncodeToString(mac(key, sts))
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
