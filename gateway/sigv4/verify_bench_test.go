package sigv4

import (
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger/crypto/secret"
)

// BenchmarkVerify is one verification of an Encrypt request as
// aws-sdk-go-v2 signs it (seven signed headers, a 1 KiB plaintext's body),
// with the day's signing key cached: what the gateway does per request.
func BenchmarkVerify(b *testing.B) {
	now := time.Date(2026, 11, 27, 3, 4, 5, 0, time.UTC)
	body := []byte(`{"KeyId":"alias/bench","Plaintext":"` + strings.Repeat("QUJD", 342) + `"}`)
	headers := map[string]string{"host": "127.0.0.1:8080", "x-amz-date": now.Format(AmzDateFormat), "x-amz-target": "TrentService.Encrypt",
		"content-type": "application/x-amz-json-1.1", "content-length": "1400",
		"amz-sdk-invocation-id": "0d5b6c9e-2f5c-4a43-9d2b-6a3c3a1b2c3d", "amz-sdk-request": "attempt=1; max=3"}
	var hs []Header
	for k, v := range headers {
		hs = append(hs, Header{Name: k, Value: v})
	}
	creds := Credentials{AccessKeyID: "AKIDEXAMPLE00001", Secret: "secret-secret-secret"}
	a, err := Parse(Sign(creds, "us-east-1", "kms", "POST", "/", hs, body, now))
	if err != nil {
		b.Fatal(err)
	}
	key := secret.New([]byte(creds.Secret))
	req := Request{Method: "POST", Path: "/", Body: body, Header: func(n string) string { return headers[n] }}
	var v Verifier
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Verify(a, key, "us-east-1", "kms", req, now); err != nil {
			b.Fatal(err)
		}
	}
}

// appendCanonicalHeaders writes what canonicalHeaders returns, on its fast
// path (lower-case sorted names, plain values) and off it.
func TestAppendCanonicalHeaders(t *testing.T) {
	for _, hs := range [][]Header{
		{{"content-type", "application/x-amz-json-1.1"}, {"host", "h:1"}, {"x-amz-date", "20261127T030405Z"}},
		{{"host", "h"}, {"content-type", "a"}},                            // unsorted
		{{"Host", "h"}, {"X-Amz-Date", "d"}},                              // upper case
		{{"a", "  lead and  inner\t\ttab  "}, {"b", ""}, {"c", " \r\n "}}, // folding
		{{"a", "x\u00a0y\u2003 z"}, {"b", "\u0085v\u0085"}},               // Unicode white space
		{{"a", "1"}, {"a", "2"}},                                          // repeated name
		{{"x-amz-target", "TrentService.Encrypt"}, {"x-amz-date", "d"}, {"host", "h"}},
	} {
		canonical, signed := canonicalHeaders(hs)
		want := canonical + "\n" + signed + "\n"
		if got := string(appendCanonicalHeaders([]byte("prefix"), hs)); got != "prefix"+want {
			t.Errorf("%q:\n got %q\nwant %q", hs, got, "prefix"+want)
		}
	}
}
