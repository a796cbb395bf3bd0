package tests

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/keyledger/keyledger/gateway/awsjson"
	"github.com/keyledger/keyledger/gateway/sigv4"
)

// allocatedDuring reports how many bytes the process allocated while fn
// ran (client and server alike: an upper bound on what the server took).
func allocatedDuring(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// zeros is an endless reader of zero bytes that allocates nothing.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestGzipBombIsNeverInflated: a small gzip body that inflates to 128 MiB,
// sent six times at once with a known access key and a bad signature, and
// once correctly signed, is refused before anything reads it; the process
// allocates a small fraction of one inflation.
func TestGzipBombIsNeverInflated(t *testing.T) {
	in := start(t)
	// One gzip member of 1 MiB of zeros, repeated: gzip readers inflate
	// concatenated members as one stream (and this is quick to build).
	const inflated = 128 << 20
	var member, bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&member, gzip.BestCompression)
	if _, err := io.CopyN(zw, zeros{}, 1<<20); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	for range inflated >> 20 {
		bomb.Write(member.Bytes())
	}
	if bomb.Len() > awsjson.MaxBodyBytes {
		t.Fatalf("the bomb (%d bytes) is over the body limit; the test would not reach the decoder", bomb.Len())
	}
	send := func(signed bool) (int, string) {
		req, _ := http.NewRequest("POST", in.endpoint+"/", bytes.NewReader(bomb.Bytes()))
		req.Header.Set("X-Amz-Target", "TrentService.Encrypt")
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		req.Header.Set("Content-Encoding", "gzip")
		if signed {
			signRequest(req, "admin", bomb.Bytes(), time.Now())
		} else {
			req.Header.Set("X-Amz-Date", time.Now().UTC().Format(sigv4.AmzDateFormat))
			req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAADMIN00000001/"+time.Now().UTC().Format("20060102")+
				"/us-east-1/kms/aws4_request, SignedHeaders=content-encoding;content-type;host;x-amz-date;x-amz-target, Signature="+strings.Repeat("0", 64))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0, ""
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	used := allocatedDuring(func() {
		var wg sync.WaitGroup
		for range 6 {
			wg.Go(func() {
				if status, body := send(false); status != 400 || !strings.Contains(body, "SerializationException") {
					t.Errorf("unsigned bomb: %d %s", status, body)
				}
			})
		}
		wg.Wait()
		if status, body := send(true); status != 400 || !strings.Contains(body, "Content-Encoding is not supported") {
			t.Errorf("signed bomb: %d %s", status, body)
		}
	})
	if used > 32<<20 {
		t.Fatalf("seven gzip bombs made the process allocate %d MiB (one inflation is %d MiB)", used>>20, inflated>>20)
	}
	t.Logf("seven %d KiB bombs: %d KiB allocated in the whole process", bomb.Len()>>10, used>>10)
}

// TestOversizedRequestsRefused: bodies over the limit, announced or
// chunked, and oversized headers are refused without being held in memory.
func TestOversizedRequestsRefused(t *testing.T) {
	in := start(t)
	const bodySize = 64 << 20
	send := func(chunked bool) (int, string, error) {
		var body io.Reader = io.LimitReader(zeros{}, bodySize)
		req, _ := http.NewRequest("POST", in.endpoint+"/", body)
		if !chunked {
			req.ContentLength = bodySize
		}
		req.Header.Set("X-Amz-Target", "TrentService.Encrypt")
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err // the server may close while the client still writes
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	used := allocatedDuring(func() {
		for _, chunked := range []bool{false, true, false, true} {
			status, body, err := send(chunked)
			if err == nil && (status != 400 || !strings.Contains(body, "larger than the service accepts")) {
				t.Errorf("chunked=%v: %d %s", chunked, status, body)
			}
			// err != nil is allowed: the server answers before reading the
			// body and closes, and the kernel may reset the connection
			// while the client is still writing, before it reads the answer.
		}
	})
	if used > 32<<20 {
		t.Fatalf("four %d MiB bodies made the process allocate %d MiB", bodySize>>20, used>>20)
	}

	req, _ := http.NewRequest("POST", in.endpoint+"/", strings.NewReader("{}"))
	req.Header.Set("X-Amz-Target", "TrentService.ListKeys")
	req.Header.Set("X-Padding", strings.Repeat("a", 2*awsjson.MaxHeaderBytes))
	resp, err := http.DefaultClient.Do(req)
	switch {
	case err != nil && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET):
		t.Fatal(err)
	case err != nil:
		// Refused after the headers' limit and closed while the client
		// still wrote them: the kernel reports that write, not the answer.
	default:
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Fatalf("oversized headers: %d", resp.StatusCode)
		}
	}
	if _, err := in.kms.ListKeys(context.Background(), &kms.ListKeysInput{}); err != nil {
		t.Fatalf("still serving: %v", err)
	}
}

// TestSelectingHeadersMustBeSigned: a ListKeys signed without X-Amz-Target
// cannot be replayed as CreateKey; Content-Type and any x-amz-* header sent
// must be signed too.
func TestSelectingHeadersMustBeSigned(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	keysBefore, err := in.kms.ListKeys(ctx, &kms.ListKeysInput{})
	if err != nil {
		t.Fatal(err)
	}
	// sign as admin over exactly the headers named, then send with all set.
	send := func(signed []string, target string, extra map[string]string) (int, string) {
		now := time.Now().UTC()
		body := []byte("{}")
		values := map[string]string{"host": strings.TrimPrefix(in.endpoint, "http://"), "x-amz-date": now.Format(sigv4.AmzDateFormat),
			"content-type": "application/x-amz-json-1.1", "x-amz-target": "TrentService.ListKeys"}
		for k, v := range extra {
			values[k] = v
		}
		var hs []sigv4.Header
		for _, name := range signed {
			hs = append(hs, sigv4.Header{Name: name, Value: values[name]})
		}
		c := testCredentials["admin"]
		req, _ := http.NewRequest("POST", in.endpoint+"/", bytes.NewReader(body))
		req.Header.Set("X-Amz-Date", values["x-amz-date"])
		req.Header.Set("Content-Type", values["content-type"])
		req.Header.Set("X-Amz-Target", target)
		for k, v := range extra {
			req.Header.Set(k, v)
		}
		req.Header.Set("Authorization", sigv4.Sign(sigv4.Credentials{AccessKeyID: c[0], Secret: c[1]}, testRegion, "kms", "POST", "/", hs, body, now))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	all := []string{"content-type", "host", "x-amz-date", "x-amz-target"}
	if status, body := send(all, "TrentService.ListKeys", nil); status != 200 {
		t.Fatalf("fully signed: %d %s", status, body)
	}
	tests := []struct {
		name   string
		signed []string
		target string
		extra  map[string]string
		want   string
	}{
		{"target swapped", []string{"content-type", "host", "x-amz-date"}, "TrentService.CreateKey", nil, "'X-Amz-Target' must be a 'SignedHeader'"},
		{"content-type unsigned", []string{"host", "x-amz-date", "x-amz-target"}, "TrentService.ListKeys", nil, "'Content-Type' must be a 'SignedHeader'"},
		{"host unsigned", []string{"content-type", "x-amz-date", "x-amz-target"}, "TrentService.ListKeys", nil, "'Host' or ':authority'"},
		{"other x-amz header unsigned", all, "TrentService.ListKeys", map[string]string{"X-Amz-Meta": "x"}, "'X-Amz-Meta' must be a 'SignedHeader'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := send(tc.signed, tc.target, tc.extra)
			if status != 400 || !strings.Contains(body, "InvalidSignatureException") || !strings.Contains(body, tc.want) {
				t.Fatalf("got %d %s, want InvalidSignatureException %q", status, body, tc.want)
			}
		})
	}
	keysAfter, err := in.kms.ListKeys(ctx, &kms.ListKeysInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(keysAfter.Keys) != len(keysBefore.Keys) {
		t.Fatalf("a key was created by a swapped target: %d keys, %d before", len(keysAfter.Keys), len(keysBefore.Keys))
	}
}

// TestStrictJSON: invalid UTF-8 in any string member is a
// ValidationException, a member named twice a SerializationException; the
// SDK's own requests are unaffected.
func TestStrictJSON(t *testing.T) {
	in := start(t)
	k := in.createKey("strict")
	const ct = "application/x-amz-json-1.1"
	tests := []struct{ name, body, code string }{
		{"invalid UTF-8 in context value", "{\"KeyId\":\"" + k + "\",\"Plaintext\":\"aGk=\",\"EncryptionContext\":{\"a\":\"\xff\"}}", "ValidationException"},
		{"invalid UTF-8 in context key", "{\"KeyId\":\"" + k + "\",\"Plaintext\":\"aGk=\",\"EncryptionContext\":{\"\xc3(\":\"b\"}}", "ValidationException"},
		{"lone surrogate escape", `{"KeyId":"` + k + `","Plaintext":"aGk=","EncryptionContext":{"a":"\udc00"}}`, "ValidationException"},
		{"KeyId twice", `{"KeyId":"` + k + `","Plaintext":"aGk=","KeyId":"alias/other"}`, "SerializationException"},
		{"KeyId twice, differing in case", `{"KeyId":"` + k + `","Plaintext":"aGk=","keyid":"alias/other"}`, "SerializationException"},
		{"context key twice", `{"KeyId":"` + k + `","Plaintext":"aGk=","EncryptionContext":{"a":"1","a":"2"}}`, "SerializationException"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, code, msg := rawCall(t, in.endpoint, "TrentService.Encrypt", ct, signIt, tc.body)
			if status != 400 || code != tc.code {
				t.Fatalf("got %d %s %q, want 400 %s", status, code, msg, tc.code)
			}
		})
	}
	if status, code, msg := rawCall(t, in.endpoint, "TrentService.Encrypt", ct, signIt,
		`{"KeyId":"`+k+`","Plaintext":"aGk=","EncryptionContext":{"é":"😀","E":"e","e":"E"}}`); status != 200 {
		t.Fatalf("valid UTF-8 and case-distinct context keys: %d %s %s", status, code, msg)
	}
}
