package sigv4

import (
	"sync"
	"testing"
	"time"

	"github.com/keyledger/keyledger/crypto/secret"
)

// FuzzParseDate: the cached parse answers time.Parse for any text after
// any other, and a date that parses starts with the YYYYMMDD of its time,
// which Verify compares with the credential scope's date.
func FuzzParseDate(f *testing.F) {
	f.Add("20261127T101112Z", "20261127T101112Z")
	f.Add("20261127T101112Z", "20261127T91112Z")
	f.Add("00001231T235959Z", "+0261127T101112Z")
	f.Add("20261131T101112Z", "2026112 T101112Z")
	var v Verifier
	f.Fuzz(func(t *testing.T, first, second string) {
		for _, text := range []string{first, second, first} {
			got, err := v.parseDate(text)
			want, werr := time.Parse(AmzDateFormat, text)
			if (err == nil) != (werr == nil) || !got.Equal(want) || got.Location() != want.Location() {
				t.Fatalf("parseDate(%q) = %v, %v; time.Parse: %v, %v", text, got, err, want, werr)
			}
			if err == nil && text[:8] != got.Format("20060102") {
				t.Fatalf("%q parses to day %s", text, got.Format("20060102"))
			}
		}
	})
}

// TestParseDateConcurrent: verifications of requests signed at different
// times, at once, each get their own date.
func TestParseDateConcurrent(t *testing.T) {
	var v Verifier
	base := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				want := base.Add(time.Duration(g*7+i%3) * time.Second)
				got, err := v.parseDate(want.Format(AmzDateFormat))
				if err != nil || !got.Equal(want) {
					t.Errorf("parseDate(%s) = %v, %v", want.Format(AmzDateFormat), got, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestCachedDateStillExpires: a date the verifier has cached is held to
// the skew bound of each verification's own clock: the same signed
// request is accepted at its time and refused 16 minutes later or
// earlier, and accepted again in between.
func TestCachedDateStillExpires(t *testing.T) {
	signed := time.Date(2026, 11, 27, 3, 4, 5, 0, time.UTC)
	headers := map[string]string{"host": "h", "x-amz-date": signed.Format(AmzDateFormat), "content-type": "application/x-amz-json-1.1"}
	hs := []Header{{"content-type", headers["content-type"]}, {"host", "h"}, {"x-amz-date", headers["x-amz-date"]}}
	body := []byte(`{}`)
	creds := Credentials{AccessKeyID: "AKIDEXAMPLE", Secret: "secret"}
	a, err := Parse(Sign(creds, "us-east-1", "kms", "POST", "/", hs, body, signed))
	if err != nil {
		t.Fatal(err)
	}
	req := Request{Method: "POST", Path: "/", Body: body, Header: func(n string) string { return headers[n] }}
	var v Verifier
	key := secret.New([]byte(creds.Secret))
	for _, tc := range []struct {
		now time.Time
		ok  bool
	}{{signed, true}, {signed.Add(MaxSkew + time.Minute), false}, {signed.Add(MaxSkew), true}, {signed.Add(-MaxSkew - time.Second), false}, {signed, true}} {
		if err := v.Verify(a, key, "us-east-1", "kms", req, tc.now); (err == nil) != tc.ok {
			t.Fatalf("verified at %v: %v, want ok %v", tc.now, err, tc.ok)
		}
	}
}
