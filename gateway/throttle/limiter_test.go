package throttle

import (
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func allowed(l *Limiter, account, family string, n int) int {
	ok := 0
	for range n {
		if l.Allow(account, family) {
			ok++
		}
	}
	return ok
}

func TestBucketRefillsAtQuota(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	l := New(Config{Region: "eu-north-1", Quotas: map[string]float64{"CreateKey": 5}, Now: c.now})
	if got := allowed(l, "111122223333", "CreateKey", 20); got != 5 {
		t.Fatalf("a full bucket admitted %d of 20, want its burst of 5", got)
	}
	c.advance(400 * time.Millisecond) // 2 tokens
	if got := allowed(l, "111122223333", "CreateKey", 20); got != 2 {
		t.Fatalf("after 400ms admitted %d, want 2", got)
	}
	c.advance(time.Hour) // refill caps at one second's worth
	if got := allowed(l, "111122223333", "CreateKey", 20); got != 5 {
		t.Fatalf("after an hour admitted %d, want 5", got)
	}
}

func TestAccountsAndFamiliesAreIsolated(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	l := New(Config{Region: "eu-north-1", Defaults: AWSQuotas, Now: c.now,
		Quotas: map[string]float64{Symmetric: 3},
		Account: func(a string) map[string]float64 {
			if a == "444455556666" {
				return map[string]float64{Symmetric: 10}
			}
			return nil
		}})
	if got := allowed(l, "111122223333", Symmetric, 50); got != 3 {
		t.Fatalf("account A admitted %d, want 3", got)
	}
	if got := allowed(l, "444455556666", Symmetric, 50); got != 10 {
		t.Fatalf("account B (own quota) admitted %d, want 10", got)
	}
	if got := allowed(l, "111122223333", "DescribeKey", 50); got != 50 {
		t.Fatalf("another family of account A admitted %d, want 50 (quota 2000)", got)
	}
}

func TestSlowAndUnlimitedQuotas(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	l := New(Config{Region: "eu-north-1", Defaults: AWSQuotas, Now: c.now, Quotas: map[string]float64{"ListKeys": 0}})
	if got := allowed(l, "111122223333", "GetParametersForImport", 5); got != 1 {
		t.Fatalf("0.25/s admitted %d at once, want 1", got)
	}
	c.advance(2 * time.Second)
	if got := allowed(l, "111122223333", "GetParametersForImport", 5); got != 0 {
		t.Fatalf("0.25/s admitted %d after 2s, want 0", got)
	}
	c.advance(2 * time.Second)
	if got := allowed(l, "111122223333", "GetParametersForImport", 5); got != 1 {
		t.Fatalf("0.25/s admitted %d after 4s, want 1", got)
	}
	if got := allowed(l, "111122223333", "ListKeys", 10_000); got != 10_000 {
		t.Fatalf("quota 0 (no limit) admitted %d of 10000", got)
	}
}

func TestDefaults(t *testing.T) {
	for _, tc := range []struct {
		region, family string
		want           float64
	}{
		{"us-east-1", Symmetric, 50_000},
		{"eu-central-1", Symmetric, 20_000},
		{"sa-east-1", Symmetric, 10_000},
		{"sa-east-1", RSA, 1000},
		{"sa-east-1", ECC, 1000},
		{"sa-east-1", "CreateKey", 5},
		{"sa-east-1", "ListKeys", 500},
		{"sa-east-1", "DescribeKey", 2000},
		{"sa-east-1", DataKeyPairFamily("RSA_4096"), 0.1},
		{"sa-east-1", "RotateKeyOnDemand", 5},
	} {
		if got := DefaultQuota(tc.region, tc.family); got != tc.want {
			t.Errorf("DefaultQuota(%s, %s) = %v, want %v", tc.region, tc.family, got, tc.want)
		}
	}
}

func TestFamilyOf(t *testing.T) {
	for _, tc := range []struct{ op, alg, want string }{
		{"Encrypt", "", Symmetric},
		{"Decrypt", "SYMMETRIC_DEFAULT", Symmetric},
		{"Decrypt", "RSAES_OAEP_SHA_256", RSA},
		{"Sign", "RSASSA_PSS_SHA_256", RSA},
		{"Verify", "ECDSA_SHA_256", ECC},
		{"Sign", "ML_DSA_SHAKE_256", MLDSA},
		{"DeriveSharedSecret", "", ECC},
		{"GenerateRandom", "", Symmetric},
		{"GenerateDataKeyPair", "RSA_2048", DataKeyPairFamily("RSA_2048")},
		{"GenerateDataKeyPairWithoutPlaintext", "NONSENSE", DataKeyPairFamily("ECC_NIST_P256")},
		{"CreateKey", "", "CreateKey"},
	} {
		if got := FamilyOf(tc.op, tc.alg); got != tc.want {
			t.Errorf("FamilyOf(%s, %s) = %s, want %s", tc.op, tc.alg, got, tc.want)
		}
	}
}

// TestNoQuotasByDefault: without a table of defaults nothing is limited
// but keyledger's own audit endpoints and what is configured.
func TestNoQuotasByDefault(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	l := New(Config{Region: "eu-north-1", Now: c.now, Quotas: map[string]float64{"ListKeys": 3},
		Account: func(a string) map[string]float64 {
			if a == "444455556666" {
				return map[string]float64{"CreateKey": 2}
			}
			return nil
		}})
	for _, tc := range []struct {
		account, family string
		want            int
	}{
		{"111122223333", "CreateKey", 1000},
		{"111122223333", RSA, 1000},
		{"111122223333", DataKeyPairFamily("RSA_4096"), 1000},
		{"111122223333", "ListKeys", 3},
		{"444455556666", "CreateKey", 2},
		{"111122223333", Audit, 20},
	} {
		if got := allowed(l, tc.account, tc.family, 1000); got != tc.want {
			t.Errorf("%s %s: admitted %d of 1000 at once, want %d", tc.account, tc.family, got, tc.want)
		}
	}
}

func TestRefusalsAreSummarised(t *testing.T) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	l := New(Config{Region: "eu-north-1", Defaults: AWSQuotas, Now: c.now})
	l.Refused("111122223333", "CreateKey", Request{Operation: "CreateKey", RequestID: "first"})
	c.advance(time.Second)
	l.Refused("111122223333", "CreateKey", Request{Operation: "CreateKey", RequestID: "second"})
	l.Refused("444455556666", Symmetric, Request{Operation: "Encrypt", RequestID: "other"})
	got := l.Flush()
	if len(got) != 2 {
		t.Fatalf("got %d summaries, want 2: %+v", len(got), got)
	}
	a := got[0]
	if a.Account != "111122223333" || a.Count != 2 || a.First.RequestID != "first" || a.To.Sub(a.From) != time.Second || a.Quota != 5 {
		t.Fatalf("summary %+v", a)
	}
	if again := l.Flush(); len(again) != 0 {
		t.Fatalf("a second Flush returned %+v", again)
	}
}

func BenchmarkAllow(b *testing.B) {
	l := New(Config{Region: "us-east-1", Quotas: map[string]float64{Symmetric: 1e12}})
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Allow("111122223333", Symmetric)
		}
	})
}
