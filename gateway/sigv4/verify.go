package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyledger/keyledger/crypto/secret"
)

// MaxSkew is how far a request's X-Amz-Date may be from the server's clock.
const MaxSkew = 15 * time.Minute

// ErrInvalid is every failed verification; InvalidError says why in AWS's
// words (never quoting the secret or the expected signature).
var ErrInvalid = errors.New("invalid signature")

// InvalidError is a signature AWS would refuse with InvalidSignatureException.
type InvalidError struct{ Reason string }

func (e *InvalidError) Error() string { return e.Reason }
func (e *InvalidError) Unwrap() error { return ErrInvalid }

// Request is what verification needs of an HTTP request.
type Request struct {
	Method string
	Path   string
	Header func(name string) string // value of a request header (lower-case name)
	Body   []byte
}

// Verifier checks signatures, keeping each access key's derived signing
// key for its day (the four HMACs that derive it are most of the cost of a
// verification) and HMAC states keyed with it for reuse. It never caches a
// verification's result. Safe for concurrent use.
type Verifier struct {
	mu   sync.RWMutex
	keys map[string]*scopedKey // access key id → its latest scope's signing key
	date atomic.Pointer[parsedDate]
}

// parsedDate is the last X-Amz-Date parsed: clients sign many requests
// within one second, and time.Parse was a tenth of a verification.
type parsedDate struct {
	text string
	t    time.Time
}

// parseDate parses an X-Amz-Date value.
func (v *Verifier) parseDate(text string) (time.Time, error) {
	if d := v.date.Load(); d != nil && d.text == text {
		return d.t, nil
	}
	t, err := time.Parse(AmzDateFormat, text)
	if err == nil {
		v.date.Store(&parsedDate{text: strings.Clone(text), t: t}) // text may live in a reused request buffer
	}
	return t, err
}

type scopedKey struct {
	date, region, service string       // the scope
	secret                secret.Bytes // what the key was derived from
	key                   secret.Bytes
	macs                  sync.Pool // of hash.Hash: HMAC-SHA256 keyed with key
}

// Verify checks a parsed Authorization header against the caller's secret:
// the scope (date, region, service), the clock skew, the payload hash and
// the signature itself, compared in constant time.
func (v *Verifier) Verify(a Authorization, secretKey secret.Bytes, region, service string, r Request, now time.Time) error {
	amzDate := r.Header("x-amz-date")
	if amzDate == "" {
		return &IncompleteError{Reason: "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."}
	}
	t, err := v.parseDate(amzDate)
	if err != nil {
		return &IncompleteError{Reason: "X-Amz-Date must have the form 20060102T150405Z."}
	}
	if a.Region != region {
		return &InvalidError{Reason: fmt.Sprintf("Credential should be scoped to a valid region, not '%s'.", a.Region)}
	}
	if a.Service != service {
		return &InvalidError{Reason: fmt.Sprintf("Credential should be scoped to correct service: '%s'.", service)}
	}
	if a.Date != amzDate[:8] { // the date of a parsed 20060102T150405Z
		return &InvalidError{Reason: "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP."}
	}
	if d := now.Sub(t); d > MaxSkew || d < -MaxSkew {
		return &InvalidError{Reason: fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - 15 min.)",
			amzDate, now.UTC().Add(-MaxSkew).Format(AmzDateFormat), now.UTC().Format(AmzDateFormat))}
	}
	if !slices.Contains(a.SignedHeaders, "host") {
		return &InvalidError{Reason: "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."}
	}
	if h := r.Header("x-amz-content-sha256"); h != "" && h != "UNSIGNED-PAYLOAD" {
		sum := sha256.Sum256(r.Body)
		var hexSum [64]byte
		hex.Encode(hexSum[:], sum[:])
		if h != string(hexSum[:]) {
			return &InvalidError{Reason: "The provided 'x-amz-content-sha256' header does not match what was computed."}
		}
	}
	var given [sha256.Size]byte
	if n, err := hex.Decode(given[:], []byte(a.Signature)); err != nil || n != len(given) {
		return &InvalidError{Reason: mismatch}
	}
	var few [16]Header
	headers := few[:0]
	for _, name := range a.SignedHeaders {
		headers = append(headers, Header{Name: name, Value: r.Header(name)})
	}
	bp := scratch.Get().(*[]byte)
	defer scratch.Put(bp)
	*bp = appendStringToSign((*bp)[:0], region, service, r.Method, r.Path, headers, r.Body, t)
	sk := v.scoped(a.AccessKeyID, secretKey, a.Date, region, service)
	m, _ := sk.macs.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, sk.key.Expose())
	}
	m.Reset()
	m.Write(*bp)
	var want [sha256.Size]byte
	m.Sum(want[:0])
	sk.macs.Put(m)
	if subtle.ConstantTimeCompare(want[:], given[:]) != 1 {
		return &InvalidError{Reason: mismatch}
	}
	return nil
}

const mismatch = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."

// scoped returns the cached signing key of an access key's scope, deriving
// it again when the scope (the day) or the secret changes: one entry per
// access key. The key depends on nothing but the secret and the scope, so
// the cache cannot change a verification's outcome.
func (v *Verifier) scoped(accessKeyID string, secretKey secret.Bytes, date, region, service string) *scopedKey {
	v.mu.RLock()
	c, ok := v.keys[accessKeyID]
	v.mu.RUnlock()
	if ok && c.date == date && c.region == region && c.service == service && c.secret.Equal(secretKey) {
		return c
	}
	derived := signingKey(secretKey.Expose(), date, region, service)
	c = &scopedKey{date: strings.Clone(date), region: strings.Clone(region), service: strings.Clone(service),
		secret: secretKey, key: secret.New(derived)}
	clear(derived)
	v.mu.Lock()
	if v.keys == nil {
		v.keys = map[string]*scopedKey{}
	}
	v.keys[strings.Clone(accessKeyID)] = c
	v.mu.Unlock()
	return c
}
