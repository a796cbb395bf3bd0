package sigv4

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

const good = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261127/us-east-1/kms/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"

func TestParse(t *testing.T) {
	a, err := Parse(good)
	if err != nil {
		t.Fatal(err)
	}
	if a.AccessKeyID != "AKIDEXAMPLE" || a.Region != "us-east-1" || a.Service != "kms" || a.Date != "20261127" || len(a.SignedHeaders) != 4 {
		t.Fatalf("parsed %+v", a)
	}
}

func TestParseRejects(t *testing.T) {
	tests := map[string]error{
		"":          ErrMissing,
		"Basic abc": ErrIncomplete,
		strings.Replace(good, "Credential", "Cred", 1):               ErrIncomplete,
		strings.Replace(good, "/aws4_request", "", 1):                ErrIncomplete,
		strings.Replace(good, "/aws4_request", "/aws4_request/x", 1): ErrIncomplete,
		strings.Replace(good, "/kms/", "/kms/x/", 1):                 ErrIncomplete,
		strings.Replace(good, "AKIDEXAMPLE/", "/", 1):                ErrIncomplete,
		strings.Replace(good, "Signature=5d", "Signature=zz", 1):     ErrIncomplete,
		"AWS4-HMAC-SHA256 garbage":                                   ErrIncomplete,
	}
	for in, want := range tests {
		if _, err := Parse(in); !errors.Is(err, want) {
			t.Errorf("Parse(%q) = %v, want %v", in, err, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(good)
	f.Add("AWS4-HMAC-SHA256 Credential=a/b/c/d/e")
	f.Fuzz(func(t *testing.T, h string) {
		a, err := Parse(h)
		if err == nil && (a.AccessKeyID == "" || len(a.Signature) != 64) {
			t.Fatalf("accepted %q as %+v", h, a)
		}
	})
}

// TestParseDateCache: the verifier's last parsed X-Amz-Date is reused only
// for the same text, and a malformed date after a good one still fails.
func TestParseDateCache(t *testing.T) {
	var v Verifier
	for _, tc := range []struct {
		text string
		ok   bool
	}{{"20261127T101112Z", true}, {"20261127T101112Z", true}, {"20261127T101113Z", true}, {"20261127T1011Z", false}, {"20261127T101113Z", true}, {"2026-11-27T10:11:13Z", false}} {
		got, err := v.parseDate(tc.text)
		want, werr := time.Parse(AmzDateFormat, tc.text)
		if (err == nil) != tc.ok || (werr == nil) != tc.ok || tc.ok && !got.Equal(want) {
			t.Fatalf("parseDate(%q) = %v, %v; want %v, %v", tc.text, got, err, want, werr)
		}
	}
}

// previousParse is Parse as of 1a15faf (strings.Split).
func previousParse(header string) (Authorization, error) {
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
	for _, part := range strings.Split(rest, ",") {
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
	scope := strings.Split(credential, "/")
	if len(scope) != 5 || scope[4] != "aws4_request" || scope[0] == "" || len(scope[1]) != 8 || scope[2] == "" || scope[3] == "" {
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

// FuzzParseMatchesPrevious: Parse accepts, refuses (with the same
// reason) and reads what it read before it stopped making slices.
func FuzzParseMatchesPrevious(f *testing.F) {
	f.Add(good)
	f.Add(strings.Replace(good, "/aws4_request", "/aws4_request/", 1))
	f.Add(strings.Replace(good, "AKIDEXAMPLE/", "/", 1))
	f.Add("AWS4-HMAC-SHA256 Credential=a/b/c/d/e/f, SignedHeaders=host, Signature=" + strings.Repeat("a", 64))
	f.Fuzz(func(t *testing.T, h string) {
		got, err := Parse(h)
		want, werr := previousParse(h)
		if fmt.Sprint(err) != fmt.Sprint(werr) || !reflect.DeepEqual(got, want) {
			t.Fatalf("Parse(%q) = %+v, %v; before %+v, %v", h, got, err, want, werr)
		}
	})
}
