// Package sigv4 parses AWS Signature Version 4 Authorization headers,
// signs requests (what a client does) and verifies them against the
// caller's secret (what the gateway does). Secrets are taken as
// secret.Bytes and compared in constant time; a Verifier caches each access
// key's derived signing key for its day. Safe for concurrent use.
package sigv4

import (
	"errors"
	"strings"
)

// Algorithm is the only signing algorithm AWS KMS accepts.
const Algorithm = "AWS4-HMAC-SHA256"

// Errors map to AWS's authentication error codes.
var (
	ErrMissing    = errors.New("Missing Authentication Token")
	ErrIncomplete = errors.New("incomplete signature")
)

// IncompleteError explains what is missing from a header.
type IncompleteError struct{ Reason string }

func (e *IncompleteError) Error() string { return e.Reason }
func (e *IncompleteError) Unwrap() error { return ErrIncomplete }

// Authorization is a parsed header.
type Authorization struct {
	AccessKeyID   string
	Date          string // yyyymmdd of the credential scope
	Region        string
	Service       string
	SignedHeaders []string
	Signature     string // hex
}

// Parse reads an Authorization header value.
func Parse(header string) (Authorization, error) {
	var a Authorization
	header = strings.TrimSpace(header)
	if header == "" {
		return a, ErrMissing
	}
	alg, rest, _ := strings.Cut(header, " ")
	if alg != Algorithm {
		return a, &IncompleteError{Reason: "Authorization header must use the " + Algorithm + " algorithm."}
	}
	var credential, signed, sig string
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return a, &IncompleteError{Reason: "Authorization header parameters must be name=value pairs."}
		}
		switch k {
		case "Credential":
			credential = v
		case "SignedHeaders":
			signed = v
		case "Signature":
			sig = v
		}
	}
	for _, p := range []struct{ name, v string }{{"Credential", credential}, {"SignedHeaders", signed}, {"Signature", sig}} {
		if p.v == "" {
			return a, &IncompleteError{Reason: "Authorization header requires '" + p.name + "' parameter."}
		}
	}
	var scope [5]string
	n := 0
	for part := range strings.SplitSeq(credential, "/") {
		if n == len(scope) {
			n++
			break
		}
		scope[n] = part
		n++
	}
	if n != 5 || scope[4] != "aws4_request" || scope[0] == "" || len(scope[1]) != 8 || scope[2] == "" || scope[3] == "" {
		return a, &IncompleteError{Reason: "Credential must have the form <access key>/<yyyymmdd>/<region>/<service>/aws4_request."}
	}
	if !isHex(sig) || len(sig) != 64 {
		return a, &IncompleteError{Reason: "Signature must be 64 hexadecimal characters."}
	}
	a.AccessKeyID, a.Date, a.Region, a.Service = scope[0], scope[1], scope[2], scope[3]
	a.SignedHeaders = strings.Split(signed, ";")
	a.Signature = sig
	return a, nil
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// MustSign reports whether a request header, when present, has to be among
// SignedHeaders. AWS requires host and every x-amz-* header; keyledger also
// requires content-type, which selects the protocol. SDKs and the AWS CLI
// sign all three, so only a tampered or hand-made request is refused.
func MustSign(name string) bool {
	return len(name) >= 6 && strings.EqualFold(name[:6], "x-amz-") ||
		strings.EqualFold(name, "host") || strings.EqualFold(name, "content-type")
}

// CheckSigned refuses a request header that MustSign but a did not sign,
// in AWS's words, so an unsigned X-Amz-Target cannot be swapped for another
// operation under a valid signature.
func (a Authorization) CheckSigned(name string) error {
	for _, s := range a.SignedHeaders {
		if strings.EqualFold(s, name) {
			return nil
		}
	}
	if strings.EqualFold(name, "host") {
		return &InvalidError{Reason: "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."}
	}
	return &InvalidError{Reason: "'" + name + "' must be a 'SignedHeader' in the AWS Authorization."}
}
