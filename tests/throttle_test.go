package tests

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
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

// servePrincipals starts `keyledger serve` with principals (testPrincipals if
// "") and extra flags, and returns its endpoint once it answers.
func servePrincipals(t *testing.T, principals string, flags ...string) string {
	t.Helper()
	if principals == "" {
		principals = testPrincipals
	}
	pfile := filepath.Join(t.TempDir(), "principals.json")
	if err := os.WriteFile(pfile, []byte(principals), 0o600); err != nil {
		t.Fatal(err)
	}
	endpoint := "http://127.0.0.1:" + strconv.Itoa(freePort(t))
	args := append([]string{"serve", "--data-dir", t.TempDir(), "--listen", strings.TrimPrefix(endpoint, "http://"),
		"--principals", pfile}, flags...)
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "KEYLEDGER_LOG_LEVEL=warn")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(endpoint + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return endpoint
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("keyledger serve %v did not come up:\n%s", flags, stderr.String())
		}
	}
}

func clientAs(endpoint, user string) *kms.Client {
	c := testCredentials[user]
	return newClient(endpoint, c[0], c[1]) // no retries
}

// TestDefaultServerDoesNotThrottleABurst: on a fresh server with the
// default flags, an SDK client with retries off runs a burst of control
// operations (24 CreateKey in a row, then a round of others on each key)
// without a ThrottlingException: AWS's 5/s CreateKey quota is not the
// default.
func TestDefaultServerDoesNotThrottleABurst(t *testing.T) {
	c := clientAs(servePrincipals(t, ""), "admin")
	ctx := context.Background()
	var keys []string
	for n := range 24 {
		out, err := c.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("burst")})
		if err != nil {
			t.Fatalf("CreateKey %d of 24: %v", n+1, err)
		}
		keys = append(keys, *out.KeyMetadata.KeyId)
	}
	for n, key := range keys {
		for _, call := range []struct {
			name string
			do   func() error
		}{
			{"CreateAlias", func() error {
				_, err := c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/burst-" + strconv.Itoa(n)), TargetKeyId: aws.String(key)})
				return err
			}},
			{"EnableKeyRotation", func() error {
				_, err := c.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: aws.String(key)})
				return err
			}},
			{"DisableKey", func() error {
				_, err := c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(key)})
				return err
			}},
			{"ScheduleKeyDeletion", func() error {
				_, err := c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(key), PendingWindowInDays: aws.Int32(7)})
				return err
			}},
		} {
			if err := call.do(); err != nil {
				t.Fatalf("%s on key %d: %v", call.name, n+1, err)
			}
		}
	}
}

// TestFairShareRefusesTheNoisyNotTheVictim: with a deliberately small
// fair share (2 slots, queues of 2), one account hammering Encrypt on 32
// connections is refused with ThrottlingException, while another account
// encrypting one request at a time is never refused: a quiet principal's
// cheap request always starts.
func TestFairShareRefusesTheNoisyNotTheVictim(t *testing.T) {
	endpoint := servePrincipals(t, "", "--fair-share-slots", "2", "--fair-share-queue", "2")
	ctx := context.Background()
	noisy, victim := clientAs(endpoint, "admin"), clientAs(endpoint, "erin")
	keyOf := func(c *kms.Client) string {
		out, err := c.CreateKey(ctx, &kms.CreateKeyInput{})
		if err != nil {
			t.Fatal(err)
		}
		return *out.KeyMetadata.KeyId
	}
	victimKey := keyOf(victim)
	// The neighbour signs with an RSA key: milliseconds of CPU a request,
	// each holding a core's worth of slots (TestFairVictimServedBesideACheapFlood
	// floods with Encrypts).
	rsa, err := noisy.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: types.KeySpecRsa2048, KeyUsage: types.KeyUsageTypeSignVerify})
	if err != nil {
		t.Fatal(err)
	}
	noisyKey := *rsa.KeyMetadata.KeyId

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	noisyOK, noisyThrottled := 0, 0
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := noisy.Sign(ctx, &kms.SignInput{KeyId: aws.String(noisyKey), Message: []byte("noise"),
					SigningAlgorithm: types.SigningAlgorithmSpecRsassaPssSha256})
				mu.Lock()
				switch {
				case err == nil:
					noisyOK++
				case throttledAsAWS(err):
					noisyThrottled++
				default:
					t.Errorf("the neighbour's Sign: %v", err)
				}
				mu.Unlock()
			}
		}()
	}
	victimOK := 0
	for n := range 200 {
		if _, err := victim.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(victimKey), Plaintext: []byte("quiet")}); err != nil {
			t.Errorf("the victim's Encrypt %d: %v", n+1, err)
			continue
		}
		victimOK++
		mu.Lock()
		enough := noisyThrottled >= 20 && n >= 50
		mu.Unlock()
		if enough {
			break
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("victim: %d ok; neighbour: %d ok, %d throttled", victimOK, noisyOK, noisyThrottled)
	if noisyThrottled < 20 {
		t.Fatalf("the neighbour on 32 connections was throttled %d times beside the victim's %d requests, want ≥ 20", noisyThrottled, victimOK)
	}
	if noisyOK == 0 {
		t.Fatal("the neighbour was never served")
	}
}

const awsThrottlingMessage = "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls."

// throttledAsAWS reports whether err is AWS's throttling answer: the code,
// the message and HTTP 400 (safe to call from any goroutine).
func throttledAsAWS(err error) bool {
	var apiErr smithy.APIError
	var re *awshttp.ResponseError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == "ThrottlingException" && apiErr.ErrorMessage() == awsThrottlingMessage &&
		errors.As(err, &re) && re.HTTPStatusCode() == 400
}

// createKeysAtOnce sends n CreateKey requests at the same moment and
// returns how many succeeded; the others must be ThrottlingException,
// HTTP 400, with AWS's message. It also returns how long the burst took:
// a bucket refills meanwhile.
func createKeysAtOnce(t *testing.T, c *kms.Client, n int) (int, time.Duration) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	began := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = c.CreateKey(context.Background(), &kms.CreateKeyInput{})
		}()
	}
	close(start)
	wg.Wait()
	took := time.Since(began)
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
			continue
		}
		if msg := wantCode(t, err, "ThrottlingException"); msg != awsThrottlingMessage {
			t.Fatalf("message %q", msg)
		}
		var re *awshttp.ResponseError
		if !errors.As(err, &re) || re.HTTPStatusCode() != 400 {
			t.Fatalf("throttled with %v, want HTTP 400", err)
		}
	}
	return ok, took
}

// wantAdmitted checks a burst against a bucket of rate per second that
// started full: rate requests, and what refilled while the burst lasted.
func wantAdmitted(t *testing.T, what string, ok int, took time.Duration, rate float64) {
	t.Helper()
	if most := int(rate + rate*took.Seconds()); ok < int(rate) || ok > most {
		t.Fatalf("%s: %d succeeded in %v, want %v (at most %d with what refilled meanwhile)", what, ok, took, rate, most)
	}
}

// TestAWSQuotas: --quotas aws reproduces AWS's table: of 10 CreateKey
// requests at once, 5 succeed (5/s, and whatever refilled while they
// were answered) and the others are refused as AWS refuses them.
func TestAWSQuotas(t *testing.T) {
	c := clientAs(servePrincipals(t, "", "--quotas", "aws"), "admin")
	ok, took := createKeysAtOnce(t, c, 10)
	wantAdmitted(t, "10 CreateKey at once under --quotas aws", ok, took, 5)
	if ok == 10 {
		t.Fatalf("10 CreateKey in %v under --quotas aws all succeeded", took)
	}
}

// TestQuotaOverrides: a quota set for one account in the principals file,
// and one set for every account with --quota, apply on the default
// server (no table of quotas); the other account is not limited.
func TestQuotaOverrides(t *testing.T) {
	principals := strings.Replace(testPrincipals, `"111122223333":{"users":{`, `"111122223333":{"quotas":{"CreateKey":2},"users":{`, 1)
	endpoint := servePrincipals(t, principals, "--quota", "ListKeys=1")
	admin, erin := clientAs(endpoint, "admin"), clientAs(endpoint, "erin")
	ok, took := createKeysAtOnce(t, admin, 6)
	wantAdmitted(t, "6 CreateKey at once for an account with a quota of 2/s", ok, took, 2)
	if ok == 6 {
		t.Fatalf("6 CreateKey in %v for an account with a quota of 2/s all succeeded", took)
	}
	if ok, _ := createKeysAtOnce(t, erin, 8); ok != 8 {
		t.Fatalf("%d of 8 CreateKey at once succeeded for an account without a quota, want 8", ok)
	}
	throttled := 0
	for range 3 {
		if _, err := erin.ListKeys(context.Background(), &kms.ListKeysInput{}); err != nil {
			wantCode(t, err, "ThrottlingException")
			throttled++
		}
	}
	if throttled == 0 {
		t.Fatal("3 ListKeys at once under --quota ListKeys=1 were never throttled")
	}
}

// TestOverloadRefusalsAreRecorded: requests fair sharing refuses are
// recorded in the ledger as quota refusals are, summarised per account
// (family keyledger-overload), and only for the account refused.
func TestOverloadRefusalsAreRecorded(t *testing.T) {
	in := start(t, withThrottle(throttle.New(throttle.Config{Region: testRegion,
		Fair: &throttle.FairConfig{Slots: 1, Cores: 1, Queue: 1}})))
	key := in.createKey("overload")
	allowCarol(t, in, key)
	ctx := context.Background()
	carol := in.as("carol")
	stop, stopped := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	go func() { // account B keeps account A from being alone
		defer close(stopped)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := carol.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyARN(key)), Plaintext: []byte("x")}); err != nil {
				t.Errorf("account B: %v", err)
				return
			}
		}
	}()
	// Account A signs with an RSA key: work that holds its share for
	// milliseconds of CPU, so its requests overlap on the one slot however
	// fast the ledger commits.
	rsa, err := in.kms.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: types.KeySpecRsa2048, KeyUsage: types.KeyUsageTypeSignVerify})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	throttled := 0
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if _, err := in.kms.Sign(ctx, &kms.SignInput{KeyId: rsa.KeyMetadata.KeyId, Message: []byte("x"),
					SigningAlgorithm: types.SigningAlgorithmSpecRsassaPssSha256}); err != nil {
					if !throttledAsAWS(err) {
						t.Errorf("account A: %v", err)
					}
					mu.Lock()
					throttled++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-stopped
	t.Logf("%d of 320 refused", throttled)
	if throttled == 0 {
		t.Fatal("16 connections beside another account on one slot were never refused")
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		recorded := 0
		for _, r := range in.records() {
			if !r.Event.Refused() || r.Event.Error.Code != "ThrottlingException" {
				continue
			}
			b := r.Event.Body.(*event.APICall)
			if r.Event.Account != testAccount || b.Params["quotaFamily"] != throttle.Overload || b.Params["quotaPerSecond"] != "" ||
				!strings.Contains(r.Event.Error.Reason, "overloaded") {
				t.Fatalf("throttling event %+v params %v", r.Event, b.Params)
			}
			n, _ := strconv.Atoi(b.Params["throttledRequests"])
			recorded += n
		}
		if recorded == throttled {
			t.Logf("%d refusals recorded", recorded)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ledger records %d refused requests, want %d", recorded, throttled)
		}
	}
}
