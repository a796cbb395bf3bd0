package sigv4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
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
