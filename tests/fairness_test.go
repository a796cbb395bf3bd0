package tests

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"

	"github.com/keyledger/keyledger/gateway/throttle"
)

// tightFair is a fair share small enough that a flood on a few dozen
// connections overflows it: two slots, queues of two.
func tightFair() *throttle.Limiter {
	return throttle.New(throttle.Config{Region: testRegion, Fair: &throttle.FairConfig{Slots: 2, Cores: 1, Queue: 2}})
}

// requestFlood calls do on n goroutines until stop closes, and counts the
// answers by AWS error code ("OK" for none).
type requestFlood struct {
	mu    sync.Mutex
	codes map[string]int
	wg    sync.WaitGroup
	stop  chan struct{}
}

func startFlood(n int, do func() error) *requestFlood {
	f := &requestFlood{codes: map[string]int{}, stop: make(chan struct{})}
	for range n {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			for {
				select {
				case <-f.stop:
					return
				default:
				}
				code := "OK"
				if err := do(); err != nil {
					code = "error: " + err.Error()
					var apiErr smithy.APIError
					if errors.As(err, &apiErr) {
						code = apiErr.ErrorCode()
						if code == "ThrottlingException" && !throttledAsAWS(err) {
							code = "ThrottlingException not as AWS answers it: " + err.Error()
						}
					}
				}
				f.mu.Lock()
				f.codes[code]++
				f.mu.Unlock()
			}
		}()
	}
	return f
}

func (f *requestFlood) count(code string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.codes[code]
}

func (f *requestFlood) end() map[string]int {
	close(f.stop)
	f.wg.Wait()
	return f.codes
}

// victimEncrypts encrypts one request at a time on one connection until
// enough() (checked after each, at most 500), failing the test on any
// error, and returns how many it made.
func victimEncrypts(t *testing.T, c *kms.Client, key string, enough func(n int) bool) int {
	t.Helper()
	n := 0
	for n < 500 {
		if _, err := c.Encrypt(context.Background(), &kms.EncryptInput{KeyId: aws.String(key), Plaintext: []byte("quiet")}); err != nil {
			t.Fatalf("the victim's Encrypt %d: %v", n+1, err)
		}
		n++
		if enough(n) {
			break
		}
	}
	return n
}

// TestFairVictimServedBesideACheapFlood: one account's Encrypts on 32
// connections overflow a tight fair share and are refused fast with
// ThrottlingException, as AWS answers it, while another account
// encrypting one request at a time is served every time. The flood is of
// cheap requests: a share is held from before the signature is checked
// until the answer, ledger commit included, so they do compete for it.
func TestFairVictimServedBesideACheapFlood(t *testing.T) {
	in := start(t, withThrottle(tightFair()))
	victim, noisy := in.kms, in.as("erin")
	victimKey := in.createKey("victim")
	out, err := noisy.CreateKey(context.Background(), &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	noisyKey := out.KeyMetadata.KeyId
	f := startFlood(32, func() error {
		_, err := noisy.Encrypt(context.Background(), &kms.EncryptInput{KeyId: noisyKey, Plaintext: []byte("noise")})
		return err
	})
	served := victimEncrypts(t, victim, victimKey, func(n int) bool { return n >= 50 && f.count("ThrottlingException") >= 20 })
	codes := f.end()
	t.Logf("victim: %d served; neighbour: %v", served, codes)
	if codes["ThrottlingException"] < 20 {
		t.Fatalf("a flood of cheap requests on 32 connections beside %d of the victim's was refused %d times, want ≥ 20 (answers: %v)",
			served, codes["ThrottlingException"], codes)
	}
	if codes["OK"] == 0 {
		t.Fatalf("the neighbour was never served: %v", codes)
	}
	for code := range codes {
		if code != "OK" && code != "ThrottlingException" {
			t.Fatalf("the neighbour got %s: %v", code, codes)
		}
	}
}

// TestFairForgerCannotTakeTheVictimsShare: a forger floods the gateway
// with requests that claim the victim's access key id (which is no
// secret: audit records name it) but cannot sign with its secret. A share
// goes by who a request proved to be, never by what it claims: the
// victim beside a tight fair share is served every time, and no forged
// request is answered but with InvalidSignatureException (or, should
// admission ever come before the signature check, ThrottlingException).
func TestFairForgerCannotTakeTheVictimsShare(t *testing.T) {
	in := start(t, withThrottle(tightFair()))
	victimKey := in.createKey("victim")
	forger := newClient(in.endpoint, testCredentials["admin"][0], "not-the-admin-secret-0001")
	f := startFlood(32, func() error {
		_, err := forger.Encrypt(context.Background(), &kms.EncryptInput{KeyId: aws.String(victimKey), Plaintext: []byte("forged")})
		return err
	})
	served := victimEncrypts(t, in.kms, victimKey, func(n int) bool {
		return n >= 50 && f.count("InvalidSignatureException") >= 200
	})
	codes := f.end()
	t.Logf("victim: %d served; forger: %v", served, codes)
	if codes["OK"] > 0 {
		t.Fatalf("%d forged requests were answered", codes["OK"])
	}
	for code := range codes {
		if code != "InvalidSignatureException" && code != "ThrottlingException" {
			t.Fatalf("the forger got %s: %v", code, codes)
		}
	}
	if codes["InvalidSignatureException"] < 200 {
		t.Fatalf("beside %d of the victim's requests the forger was refused by SigV4 only %d times, want ≥ 200 (it competes)",
			served, codes["InvalidSignatureException"])
	}
}

// TestFairStrangersStateIsBounded: requests claiming thousands of
// distinct access key ids, or none, or a garbled Authorization header,
// grow the fair-share state by no more than a fixed number of classes,
// and none gets through.
func TestFairStrangersStateIsBounded(t *testing.T) {
	lim := tightFair()
	in := start(t, withThrottle(lim))
	const senders, each = 16, 200
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[string]int{}
	stop := make(chan struct{})
	most := make(chan int)
	go func() { // the largest number of principals tracked while it lasts
		m := 0
		for {
			select {
			case <-stop:
				most <- m
				return
			case <-time.After(time.Millisecond):
				m = max(m, lim.Fair().Stats().Principals)
			}
		}
	}()
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{}
			for i := range each {
				id := make([]byte, 8)
				_, _ = rand.Read(id)
				auth := "AWS4-HMAC-SHA256 Credential=AKIA" + strings.ToUpper(hex.EncodeToString(id)) +
					"/20261127/" + testRegion + "/kms/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=" + strings.Repeat("0", 64)
				switch (s + i) % 10 {
				case 0:
					auth = "" // missing
				case 1:
					auth = "garbled"
				}
				code, err := rawKMS(hc, in.endpoint, auth)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				codes[code]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(stop)
	tracked := <-most
	t.Logf("answers: %v; most principals tracked at once: %d", codes, tracked)
	if n := codes["OK"]; n > 0 {
		t.Fatalf("%d requests with made-up credentials were answered", n)
	}
	// However requests are classed before authentication, a fixed number
	// of classes (64 at most) must do.
	if tracked > 64 {
		t.Fatalf("%d principals tracked at once for %d requests with distinct claimed key ids, want ≤ 64", tracked, senders*each)
	}
}

// rawKMS sends an Encrypt with the given Authorization header (none if
// "") and returns the AWS error code it was answered with ("OK" for
// none).
func rawKMS(hc *http.Client, endpoint, auth string) (string, error) {
	req, err := http.NewRequest("POST", endpoint+"/", strings.NewReader(`{"KeyId":"alias/none","Plaintext":"eA=="}`))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "TrentService.Encrypt")
	req.Header.Set("X-Amz-Date", time.Now().UTC().Format("20060102T150405Z"))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode == 200 {
		return "OK", nil
	}
	if code := resp.Header.Get("X-Amzn-ErrorType"); code != "" {
		return code, nil
	}
	return "", fmt.Errorf("HTTP %d without an error type", resp.StatusCode)
}
