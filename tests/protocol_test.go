package tests

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/keyledger/keyledger/gateway/sigv4"
)

// signIt asks rawCall to sign the request properly as admin.
const signIt = "<sign as admin>"

// signRequest signs a hand-made request with SigV4 as one of testPrincipals.
func signRequest(req *http.Request, user string, body []byte, when time.Time) {
	req.Header.Set("X-Amz-Date", when.UTC().Format(sigv4.AmzDateFormat))
	hs := []sigv4.Header{{Name: "host", Value: req.URL.Host}, {Name: "x-amz-date", Value: req.Header.Get("X-Amz-Date")}}
	for _, h := range []string{"Content-Type", "X-Amz-Target"} {
		if v := req.Header.Get(h); v != "" {
			hs = append(hs, sigv4.Header{Name: strings.ToLower(h), Value: v})
		}
	}
	c := testCredentials[user]
	req.Header.Set("Authorization", sigv4.Sign(sigv4.Credentials{AccessKeyID: c[0], Secret: c[1]}, testRegion, "kms", "POST", "/", hs, body, when))
}

// signRequestPath signs a GET (or any body-less) request with a query.
func signRequestPath(req *http.Request, user, pathAndQuery string, when time.Time) {
	req.Header.Set("X-Amz-Date", when.UTC().Format(sigv4.AmzDateFormat))
	hs := []sigv4.Header{{Name: "host", Value: req.URL.Host}, {Name: "x-amz-date", Value: req.Header.Get("X-Amz-Date")}}
	c := testCredentials[user]
	req.Header.Set("Authorization", sigv4.Sign(sigv4.Credentials{AccessKeyID: c[0], Secret: c[1]}, testRegion, "kms", req.Method, pathAndQuery, hs, nil, when))
}

// rawCall sends a hand-made request and returns the status and the
// decoded AWS error body. auth is an Authorization header, or signIt.
func rawCall(t *testing.T, endpoint, target, contentType, auth, body string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", endpoint+"/", strings.NewReader(body))
	if target != "" {
		req.Header.Set("X-Amz-Target", target)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	switch auth {
	case "":
	case signIt:
		signRequest(req, "admin", []byte(body), time.Now())
	default:
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var e struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(raw, &e)
	if resp.StatusCode != 200 {
		if resp.Header.Get("x-amzn-RequestId") == "" || resp.Header.Get("Content-Type") != "application/x-amz-json-1.1" {
			t.Fatalf("error response lacks AWS headers: %v", resp.Header)
		}
	}
	return resp.StatusCode, e.Type, e.Message
}

func TestProtocolErrors(t *testing.T) {
	in := start(t)
	k := in.createKey("proto")
	auth := signIt
	const ct = "application/x-amz-json-1.1"
	tests := []struct {
		name, target, ct, auth, body string
		status                       int
		code                         string
	}{
		{"unknown operation", "TrentService.FlyToMoon", ct, auth, `{}`, 400, "UnknownOperationException"},
		{"missing target", "", ct, auth, `{}`, 400, "UnknownOperationException"},
		{"wrong service prefix", "DynamoDB_20120810.ListTables", ct, auth, `{}`, 400, "UnknownOperationException"},
		{"not yet built", "TrentService.CreateCustomKeyStore", ct, auth, `{}`, 400, "UnsupportedOperationException"},
		{"wrong content type", "TrentService.ListKeys", "text/plain", auth, `{}`, 400, "SerializationException"},
		{"missing auth", "TrentService.ListKeys", ct, "", `{}`, 403, "MissingAuthenticationTokenException"},
		{"malformed auth", "TrentService.ListKeys", ct, "AWS4-HMAC-SHA256 Credential=x", `{}`, 403, "IncompleteSignatureException"},
		{"malformed json", "TrentService.Encrypt", ct, auth, `{"KeyId":`, 400, "SerializationException"},
		{"json array", "TrentService.Encrypt", ct, auth, `[1,2]`, 400, "SerializationException"},
		{"invalid base64", "TrentService.Encrypt", ct, auth, `{"KeyId":"` + k + `","Plaintext":"@@@notbase64@@@"}`, 400, "SerializationException"},
		{"wrong member type", "TrentService.Encrypt", ct, auth, `{"KeyId":42}`, 400, "SerializationException"},
		{"required member missing", "TrentService.Encrypt", ct, auth, `{"KeyId":"` + k + `"}`, 400, "ValidationException"},
		{"empty body is an empty request", "TrentService.GenerateRandom", ct, auth, ``, 400, "ValidationException"},
		{"number out of range", "TrentService.GenerateRandom", ct, auth, `{"NumberOfBytes":1e20}`, 400, "SerializationException"},
		{"oversized member", "TrentService.Encrypt", ct, auth, `{"KeyId":"` + strings.Repeat("a", 200<<10) + `"}`, 400, "ValidationException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, code, msg := rawCall(t, in.endpoint, tt.target, tt.ct, tt.auth, tt.body)
			if status != tt.status || code != tt.code || msg == "" {
				t.Fatalf("got %d %s %q, want %d %s", status, code, msg, tt.status, tt.code)
			}
			if strings.Contains(msg, "notbase64") {
				t.Fatalf("error echoes input: %q", msg)
			}
		})
	}
	// The server is still serving the SDK.
	if _, err := in.kms.Encrypt(context.Background(), &kms.EncryptInput{KeyId: aws.String(k), Plaintext: []byte("ok")}); err != nil {
		t.Fatal(err)
	}
	// GET is not part of the protocol.
	resp, err := http.Get(in.endpoint + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("GET / = %d", resp.StatusCode)
	}
}

// TestWireFormat checks raw response JSON for what SDKs rely on: base64
// blobs and epoch-second timestamps.
func TestWireFormat(t *testing.T) {
	in := start(t)
	body := `{"Description":"wire"}`
	req, _ := http.NewRequest("POST", in.endpoint+"/", strings.NewReader(body))
	req.Header.Set("X-Amz-Target", "TrentService.CreateKey")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	signRequest(req, "admin", []byte(body), time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	md := out["KeyMetadata"]
	if _, ok := md["CreationDate"].(float64); !ok {
		t.Fatalf("CreationDate is %T, want a JSON number", md["CreationDate"])
	}
	if md["CreationDate"].(float64) != float64(in.clock.Now().Unix()) {
		t.Fatalf("CreationDate %v", md["CreationDate"])
	}
	if resp.Header.Get("x-amzn-RequestId") == "" {
		t.Fatal("no request id")
	}
}
