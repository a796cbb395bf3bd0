package tests

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	awshttp "github.com/aws/smithy-go/transport/http"

	"github.com/keyledger/keyledger/gateway/throttle"
	"github.com/keyledger/keyledger/ledger/event"
)

// lowQuota throttles account A's symmetric operations at 2/s and leaves
// account B at AWS's default.
func lowQuota() *throttle.Limiter {
	return throttle.New(throttle.Config{Region: testRegion, Account: func(account string) map[string]float64 {
		if account == testAccount {
			return map[string]float64{throttle.Symmetric: 2}
		}
		return nil
	}})
}

// encryptUntilThrottled encrypts (no SDK retries) until the answer is
// ThrottlingException, which a quota of 2/s gives within a few requests.
func encryptUntilThrottled(t *testing.T, c *kms.Client, key string) {
	t.Helper()
	for n := 0; n < 50; n++ {
		_, err := c.Encrypt(context.Background(), &kms.EncryptInput{KeyId: aws.String(key), Plaintext: []byte("x")})
		if err == nil {
			continue
		}
		msg := wantCode(t, err, "ThrottlingException")
		if msg != "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls." {
			t.Fatalf("message %q", msg)
		}
		var re *awshttp.ResponseError
		if !errors.As(err, &re) || re.HTTPStatusCode() != 400 {
			t.Fatalf("throttled with %v, want HTTP 400", err)
		}
		return
	}
	t.Fatal("50 Encrypts at a quota of 2/s were never throttled")
}

func TestThrottlingAndSDKRetry(t *testing.T) {
	in := start(t, withThrottle(lowQuota()))
	key := in.createKey("throttled") // CreateKey is its own family (5/s)
	encryptUntilThrottled(t, in.kms, key)

	// The SDK's standard retryer backs off on ThrottlingException and gets
	// through once the bucket refills.
	retrying := kms.New(in.kms.Options(), func(o *kms.Options) { o.RetryMaxAttempts = 10 })
	retried := 0
	for range 4 {
		out, err := retrying.Encrypt(context.Background(), &kms.EncryptInput{KeyId: aws.String(key), Plaintext: []byte("x")})
		if err != nil {
			t.Fatalf("Encrypt with retries: %v", err)
		}
		if a, ok := retry.GetAttemptResults(out.ResultMetadata); ok && len(a.Results) > 1 {
			retried++
		}
	}
	if retried == 0 {
		t.Fatal("4 Encrypts right after throttling at 2/s needed no retry")
	}

	// The refusals are in the ledger: summary events standing for them,
	// recorded after the fact.
	deadline := time.Now().Add(10 * time.Second)
	for {
		total := 0
		for _, r := range in.records() {
			if r.Event.Refused() && r.Event.Error.Code == "ThrottlingException" {
				if r.Event.Account != testAccount || r.Event.Operation != "Encrypt" || r.Event.Actor.PrincipalARN != "arn:aws:iam::111122223333:user/admin" {
					t.Fatalf("throttling event %+v actor %+v", r.Event, r.Event.Actor)
				}
				b := r.Event.Body.(*event.APICall)
				if b.Params["quotaFamily"] != throttle.Symmetric || b.Params["quotaPerSecond"] != "2" {
					t.Fatalf("throttling event params %v", b.Params)
				}
				n, _ := strconv.Atoi(b.Params["throttledRequests"])
				total += n
			}
		}
		if total >= 1+retried {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ledger records %d throttled requests, want ≥ %d", total, 1+retried)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestThrottlingIsPerAccount(t *testing.T) {
	in := start(t, withThrottle(lowQuota()))
	key := in.createKey("shared")
	allowCarol(t, in, key)
	encryptUntilThrottled(t, in.kms, key)
	// Account B's quota is its own, even on account A's key: AWS counts
	// cross-account use against the caller's account.
	carol := in.as("carol")
	for n := range 20 {
		if _, err := carol.Encrypt(context.Background(), &kms.EncryptInput{KeyId: aws.String(keyARN(key)), Plaintext: []byte("x")}); err != nil {
			t.Fatalf("account B's Encrypt %d while A is throttled: %v", n, err)
		}
	}
	// Other families of account A are not affected.
	if _, err := in.kms.DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String(key)}); err != nil {
		t.Fatalf("DescribeKey while Encrypt is throttled: %v", err)
	}
}

func keyARN(key string) string {
	return "arn:aws:kms:" + testRegion + ":" + testAccount + ":key/" + key
}

// allowCarol lets account B use key through its key policy.
func allowCarol(t *testing.T, in *instance, key string) {
	t.Helper()
	policy := `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},
 {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*"}]}`
	if _, err := in.kms.PutKeyPolicy(context.Background(), &kms.PutKeyPolicyInput{KeyId: aws.String(key), Policy: aws.String(policy)}); err != nil {
		t.Fatal(err)
	}
}

// TestAuditEndpointsAreThrottled: the signed endpoints beside the KMS API
// (some walk much of the ledger) count against the account's
// keyledger-audit quota, answered as AWS answers throttling; another
// account's quota is untouched.
func TestAuditEndpointsAreThrottled(t *testing.T) {
	lim := throttle.New(throttle.Config{Region: testRegion, Account: func(account string) map[string]float64 {
		if account == testAccount {
			return map[string]float64{throttle.Audit: 1}
		}
		return nil
	}})
	in := start(t, withThrottle(lim))
	throttled := false
	for n := 0; n < 20 && !throttled; n++ {
		status, body := getAudit(t, in, "admin", "/audit/checkpoint")
		switch {
		case status == 400 && strings.Contains(string(body), "ThrottlingException"):
			throttled = true
		case status != 200:
			t.Fatalf("checkpoint %d: %d %s", n, status, body)
		}
	}
	if !throttled {
		t.Fatal("20 checkpoint requests at a quota of 1/s were never throttled")
	}
	if status, body := getAudit(t, in, "erin", "/audit/checkpoint"); status != 200 {
		t.Fatalf("account B's checkpoint while A is throttled: %d %s", status, body)
	}
}
