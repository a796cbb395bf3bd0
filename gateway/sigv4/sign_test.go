package sigv4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/keyledger/keyledger/crypto/secret"
)

// TestSignMatchesAWSSDK checks Sign against the AWS SDK's own signer.
func TestSignMatchesAWSSDK(t *testing.T) {
	body := []byte(`{"KeyId":"alias/app","Plaintext":"aGVsbG8="}`)
	when := time.Date(2026, 11, 27, 3, 4, 5, 0, time.UTC)
	req, _ := http.NewRequest("POST", "http://127.0.0.1:8080/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "TrentService.Encrypt")
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "kms", "us-east-1", when); err != nil {
		t.Fatal(err)
	}
	want := req.Header.Get("Authorization")
	parsed, err := Parse(want)
	if err != nil {
		t.Fatal(err)
	}
	var hs []Header
	for _, name := range parsed.SignedHeaders {
		v := req.Header.Get(name)
		switch name {
		case "host":
			v = req.Host
		case "content-length":
			v = strconv.FormatInt(req.ContentLength, 10)
		}
		hs = append(hs, Header{Name: name, Value: v})
	}
	got := Sign(Credentials{AccessKeyID: creds.AccessKeyID, Secret: creds.SecretAccessKey}, "us-east-1", "kms", "POST", "/", hs, body, when)
	if got != want {
		t.Fatalf("signature differs from the AWS SDK's:\n got %s\nwant %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	now := time.Date(2026, 11, 27, 3, 4, 5, 0, time.UTC)
	body := []byte(`{"KeyId":"k"}`)
	headers := map[string]string{"host": "127.0.0.1:8080", "x-amz-date": now.Format(AmzDateFormat), "x-amz-target": "TrentService.Encrypt",
		"content-type": "application/x-amz-json-1.1"}
	var hs []Header
	for k, v := range headers {
		hs = append(hs, Header{Name: k, Value: v})
	}
	creds := Credentials{AccessKeyID: "AKIDEXAMPLE00001", Secret: "secret-secret-secret"}
	auth := Sign(creds, "us-east-1", "kms", "POST", "/", hs, body, now)
	a, _ := Parse(auth)
	req := func(b []byte, h map[string]string) Request {
		return Request{Method: "POST", Path: "/", Body: b, Header: func(n string) string { return h[n] }}
	}
	key := secret.New([]byte(creds.Secret))
	var v Verifier
	if err := v.Verify(a, key, "us-east-1", "kms", req(body, headers), now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func() error{
		"wrong secret": func() error {
			return v.Verify(a, secret.New([]byte("other")), "us-east-1", "kms", req(body, headers), now)
		},
		"changed body": func() error { return v.Verify(a, key, "us-east-1", "kms", req([]byte(`{"KeyId":"x"}`), headers), now) },
		"wrong region": func() error { return v.Verify(a, key, "eu-west-1", "kms", req(body, headers), now) },
		"stale":        func() error { return v.Verify(a, key, "us-east-1", "kms", req(body, headers), now.Add(16*time.Minute)) },
		"from the future": func() error {
			return v.Verify(a, key, "us-east-1", "kms", req(body, headers), now.Add(-16*time.Minute))
		},
		"changed header": func() error {
			h := map[string]string{}
			for k, v := range headers {
				h[k] = v
			}
			h["x-amz-target"] = "TrentService.Decrypt"
			return v.Verify(a, key, "us-east-1", "kms", req(body, h), now)
		},
	}
	for name, call := range cases {
		if err := call(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestSignQueryMatchesAWSSDK(t *testing.T) {
	when := time.Date(2026, 11, 27, 3, 4, 5, 0, time.UTC)
	req, _ := http.NewRequest("GET", "http://127.0.0.1:8080/audit/proof/inclusion?size=10&index=3&note=a%20b~c", nil)
	creds := aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
	empty := sha256.Sum256(nil)
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(empty[:]), "kms", "us-east-1", when); err != nil {
		t.Fatal(err)
	}
	want := req.Header.Get("Authorization")
	parsed, _ := Parse(want)
	var hs []Header
	for _, name := range parsed.SignedHeaders {
		v := req.Header.Get(name)
		if name == "host" {
			v = req.Host
		}
		hs = append(hs, Header{Name: name, Value: v})
	}
	got := Sign(Credentials{AccessKeyID: creds.AccessKeyID, Secret: creds.SecretAccessKey}, "us-east-1", "kms", "GET",
		"/audit/proof/inclusion?"+req.URL.RawQuery, hs, nil, when)
	if got != want {
		t.Fatalf("query signature differs from the AWS SDK's:\n got %s\nwant %s", got, want)
	}
}
