package compliance

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/keyledger/keyledger/ledger/event"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const (
	accountA = "111122223333"
	accountB = "444455556666"
)

func rec(i int, account, key, op string, body event.Body, fail *event.Failure) event.Record {
	return event.Record{Event: &event.Event{Index: uint64(i), Time: t0.Add(time.Duration(i) * time.Hour),
		Account: account, Region: "us-east-1", KeyID: key, Operation: op, Error: fail, Body: body}}
}

// twoAccounts is a ledger with a key, a use, a denial and a principal in
// each of two accounts, and account B using account A's key.
func twoAccounts() []event.Record {
	created := func(m string) *event.KeyCreated {
		return &event.KeyCreated{KeySpec: "SYMMETRIC_DEFAULT", KeyUsage: "ENCRYPT_DECRYPT", Origin: "AWS_KMS",
			Material: event.MaterialRef{ID: m, WrappedHash: "h"}}
	}
	allowAll := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}`
	principals, _ := json.Marshal([]map[string]any{
		{"arn": "arn:aws:iam::" + accountA + ":user/admin", "policies": []json.RawMessage{json.RawMessage(allowAll)}},
		{"arn": "arn:aws:iam::" + accountB + ":user/erin", "policies": []json.RawMessage{json.RawMessage(allowAll)}},
	})
	denied := &event.Failure{Code: "AccessDeniedException"}
	return []event.Record{
		rec(0, "", "", "PrincipalsConfigured", &event.PrincipalsConfigured{Summary: string(principals)}, nil),
		rec(1, accountA, "key-a", "CreateKey", created("ma"), nil),
		rec(2, accountB, "key-b", "CreateKey", created("mb"), nil),
		rec(3, accountA, "key-a", "Encrypt", &event.APICall{}, nil),
		rec(4, accountB, "key-a", "Encrypt", &event.APICall{}, nil), // B uses A's key
		rec(5, accountB, "key-b", "Encrypt", &event.APICall{}, nil),
		rec(6, accountA, "key-a", "Decrypt", &event.APICall{}, denied),
		rec(7, accountB, "key-a", "Decrypt", &event.APICall{}, denied), // B's denied cross-account call
		rec(8, accountB, "key-b", "Decrypt", &event.APICall{}, denied),
	}
}

func report(account string) *Report {
	b := NewBuilder(Options{Now: t0.Add(24 * time.Hour), Region: "us-east-1", Account: account})
	for _, r := range twoAccounts() {
		b.Add(r)
	}
	return b.Report()
}

// summary is what a report says about whom.
type summary struct {
	Scope      string
	Keys       int
	Events     uint64
	Denied     int
	Usage      map[string]int
	Principals []string
	Findings   []string
}

func summarize(r *Report) summary {
	s := summary{Scope: r.Scope, Keys: r.Keys, Events: r.Events, Usage: map[string]int{}, Principals: r.Principals}
	for _, n := range r.DeniedPerDay {
		s.Denied += n
	}
	for _, u := range r.Usage {
		for _, n := range u.Counts {
			s.Usage[u.Key] += n
		}
	}
	for _, c := range r.Checks {
		for _, f := range c.Findings {
			if strings.HasPrefix(f.Resource, "arn:") {
				s.Findings = append(s.Findings, c.ID+" "+f.Resource)
			}
		}
	}
	return s
}

var sortStrings = cmpopts.SortSlices(func(a, b string) bool { return a < b })

func TestReportScope(t *testing.T) {
	arnA, arnB := "arn:aws:kms:us-east-1:"+accountA+":key/key-a", "arn:aws:kms:us-east-1:"+accountB+":key/key-b"
	tests := []struct {
		account string
		want    summary
	}{
		{accountA, summary{Scope: "account " + accountA, Keys: 1, Events: 3, Denied: 1,
			Usage:      map[string]int{"key-a": 2}, // its key's use by B counts for A
			Principals: []string{"arn:aws:iam::" + accountA + ":user/admin"},
			Findings:   []string{"rotation " + arnA, "decrypt-on-all-keys arn:aws:iam::" + accountA + ":user/admin"}}},
		{accountB, summary{Scope: "account " + accountB, Keys: 1, Events: 5, Denied: 2, // B's denied call on A's key counts for B
			Usage:      map[string]int{"key-b": 1},
			Principals: []string{"arn:aws:iam::" + accountB + ":user/erin"},
			Findings:   []string{"rotation " + arnB, "decrypt-on-all-keys arn:aws:iam::" + accountB + ":user/erin"}}},
		{"", summary{Scope: "all accounts", Keys: 2, Events: 9, Denied: 3,
			Usage:      map[string]int{"key-a": 2, "key-b": 1},
			Principals: []string{"arn:aws:iam::" + accountA + ":user/admin", "arn:aws:iam::" + accountB + ":user/erin"},
			Findings: []string{"rotation " + arnA, "rotation " + arnB, "decrypt-on-all-keys arn:aws:iam::" + accountA + ":user/admin",
				"decrypt-on-all-keys arn:aws:iam::" + accountB + ":user/erin"}}},
	}
	for _, tc := range tests {
		t.Run(tc.want.Scope, func(t *testing.T) {
			got := summarize(report(tc.account))
			if diff := cmp.Diff(tc.want, got, sortStrings); diff != "" {
				t.Errorf("report (-want +got):\n%s", diff)
			}
		})
	}
}

// TestQuarantineFailsIntegrity: quarantined ledger messages make the
// audit-integrity check FAIL with their count and first reasons, even when
// the chain of accepted events and the checkpoints verify.
func TestQuarantineFailsIntegrity(t *testing.T) {
	check := func(in *Integrity) Check {
		t.Helper()
		b := NewBuilder(Options{Now: t0.Add(24 * time.Hour), Region: "us-east-1"})
		b.SetIntegrity(in)
		for _, c := range b.Report().Checks {
			if c.ID == "audit-integrity" {
				return c
			}
		}
		t.Fatal("no audit-integrity check")
		return Check{}
	}
	clean := check(&Integrity{ChainVerified: true, Events: 3, Head: "abcdef0123456789", CheckpointsVerified: 1})
	if clean.Status != "PASS" {
		t.Fatalf("clean ledger: %+v", clean)
	}
	got := check(&Integrity{ChainVerified: true, Events: 3, Head: "abcdef0123456789", CheckpointsVerified: 1,
		Quarantined: 7, QuarantineReasons: []string{"stream sequence 4 (writer \"\"): not signed", "stream sequence 9 (writer \"x\"): unknown writer"}})
	if got.Status != "FAIL" || !strings.Contains(got.Summary, "7 ledger messages quarantined") {
		t.Fatalf("quarantined: %+v", got)
	}
	want := []Finding{
		{"ledger", "quarantined: stream sequence 4 (writer \"\"): not signed"},
		{"ledger", "quarantined: stream sequence 9 (writer \"x\"): unknown writer"},
		{"ledger", "and 5 more quarantined (keyledger audit verify lists them)"},
	}
	if diff := cmp.Diff(want, got.Findings); diff != "" {
		t.Fatalf("findings (-want +got):\n%s", diff)
	}
	if countOnly := check(&Integrity{ChainVerified: true, Quarantined: 1}); countOnly.Status != "FAIL" {
		t.Fatalf("a count without reasons: %+v", countOnly)
	}
}
