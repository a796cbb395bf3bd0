// Package secret holds secret bytes (plaintext key material, data keys, the
// root key) in a type that never prints, logs or marshals them.
//
// The only way to read the bytes is the explicit Expose method, so every
// place that touches plaintext key material is easy to find with grep.
// A Bytes value is immutable after construction and safe for concurrent use.
package secret

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
)

const redacted = "REDACTED"

// ErrMarshal is returned by every attempt to serialise a secret.
var ErrMarshal = errors.New("secret: refusing to serialise secret bytes")

// Bytes is an opaque container for secret bytes.
type Bytes struct {
	b []byte
}

// New copies b into a new secret. The caller should clear its own copy.
func New(b []byte) Bytes {
	return Bytes{b: append([]byte(nil), b...)}
}

// Random returns n bytes from crypto/rand.
func Random(n int) Bytes {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("secret: crypto/rand failed: " + err.Error())
	}
	return Bytes{b: b}
}

// Len reports the number of secret bytes.
func (s Bytes) Len() int { return len(s.b) }

// Expose returns the secret bytes themselves (not a copy, for speed on the
// hot path). Callers must not modify, retain beyond use, or log them.
func (s Bytes) Expose() []byte { return s.b }

// Equal reports whether two secrets hold the same bytes, in constant time.
func (s Bytes) Equal(o Bytes) bool { return subtle.ConstantTimeCompare(s.b, o.b) == 1 }

// Clear overwrites the secret bytes with zeros (best effort: copies made by
// the runtime or by callers of Expose are not reached).
func (s Bytes) Clear() { clear(s.b) }

func (Bytes) String() string                 { return redacted }
func (Bytes) GoString() string               { return redacted }
func (Bytes) Format(f fmt.State, _ rune)     { _, _ = f.Write([]byte(redacted)) }
func (Bytes) LogValue() slog.Value           { return slog.StringValue(redacted) }
func (Bytes) MarshalJSON() ([]byte, error)   { return nil, ErrMarshal }
func (Bytes) MarshalText() ([]byte, error)   { return nil, ErrMarshal }
func (Bytes) MarshalBinary() ([]byte, error) { return nil, ErrMarshal }
