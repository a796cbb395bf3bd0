package tests

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/keyledger/keyledger/projections/compliance"
	"github.com/keyledger/keyledger/projections/timetravel"
)

// TestReportScope checks that the compliance report covers the caller's
// account only, in every format, and that every account's report needs
// keyledger:ReadAllAccounts on top of keyledger:ReadReports.
func TestReportScope(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	keyA := in.createKey("account A's key")
	putPolicy(t, in, keyA, `{"Statement":[`+adminStatement+`,{"Sid":"Everyone","Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*"}]}`)
	in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &keyA, Plaintext: []byte("x")})
	in.as("alice").Encrypt(ctx, &kms.EncryptInput{KeyId: &keyA, Plaintext: []byte("x")}) // a denial in A
	erin := in.as("erin")
	outB, err := erin.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("account B's key")})
	if err != nil {
		t.Fatal(err)
	}
	keyB := *outB.KeyMetadata.KeyId
	erin.Encrypt(ctx, &kms.EncryptInput{KeyId: &keyB, Plaintext: []byte("y")})

	report := func(user, query string) compliance.Report {
		t.Helper()
		status, body := getAudit(t, in, user, "/reports/compliance"+query)
		var rep compliance.Report
		if status != 200 || json.Unmarshal(body, &rep) != nil {
			t.Fatalf("%s %s: %d %s", user, query, status, body)
		}
		return rep
	}
	// Account B's administrator sees account B and nothing of account A:
	// no key, no principal, no finding, no usage, no denial.
	for _, format := range []string{"json", "csv", "html"} {
		status, body := getAudit(t, in, "erin", "/reports/compliance?format="+format)
		if status != 200 {
			t.Fatalf("erin's %s report: %d %s", format, status, body)
		}
		for _, leak := range []string{keyA, "111122223333", "user/admin", "user/alice", "user/bob"} {
			if strings.Contains(string(body), leak) {
				t.Errorf("erin's %s report shows %q", format, leak)
			}
		}
	}
	rep := report("erin", "")
	if rep.Scope != "account 444455556666" || rep.Keys != 1 || len(rep.Usage) != 1 || rep.Usage[0].Key != keyB || len(rep.DeniedPerDay) != 0 {
		t.Errorf("erin's report: scope %q, %d keys, usage %+v, denied %v", rep.Scope, rep.Keys, rep.Usage, rep.DeniedPerDay)
	}
	for _, p := range rep.Principals {
		if !strings.Contains(p, ":444455556666:") {
			t.Errorf("erin's report names principal %s", p)
		}
	}

	// Account A's administrator sees account A only, unless it asks for
	// every account and holds keyledger:ReadAllAccounts (admin has
	// keyledger:*).
	rep = report("admin", "")
	if rep.Scope != "account 111122223333" || rep.Keys != 1 || len(rep.DeniedPerDay) != 1 {
		t.Errorf("admin's report: scope %q, %d keys, denied %v", rep.Scope, rep.Keys, rep.DeniedPerDay)
	}
	rep = report("admin", "?scope=all")
	if rep.Scope != "all accounts" || rep.Keys != 2 {
		t.Errorf("admin's all-accounts report: scope %q, %d keys", rep.Scope, rep.Keys)
	}
	if status, body := getAudit(t, in, "erin", "/reports/compliance?scope=all"); status != 400 || !strings.Contains(string(body), "AccessDeniedException") ||
		!strings.Contains(string(body), "keyledger:ReadAllAccounts") {
		t.Errorf("erin asked for every account: %d %s", status, body)
	}
	if status, body := getAudit(t, in, "erin", "/reports/compliance?scope=everything"); status != 400 || !strings.Contains(string(body), "ValidationException") {
		t.Errorf("bad scope: %d %s", status, body)
	}

	// Time travel on another account's key id tells nothing.
	status, body := getAudit(t, in, "erin", "/audit/keys/"+keyA)
	var ans timetravel.Answer
	if status != 200 || json.Unmarshal(body, &ans) != nil || ans.Exists || ans.Key != nil || strings.Contains(string(body), "111122223333") {
		t.Errorf("erin's time travel on A's key: %d %s", status, body)
	}
}

// TestListRetirableGrantsScope follows AWS: the retiring principal must be
// in the caller's account, and the caller needs kms:ListRetirableGrants.
func TestListRetirableGrantsScope(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	k := in.createKey("grants")
	alice := "arn:aws:iam::111122223333:user/alice"
	erinARN := "arn:aws:iam::444455556666:user/erin"
	for _, retiring := range []string{alice, erinARN} {
		if _, err := in.kms.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: &k, GranteePrincipal: aws.String(alice),
			RetiringPrincipal: aws.String(retiring), Operations: []types.GrantOperation{types.GrantOperationEncrypt}}); err != nil {
			t.Fatal(err)
		}
	}
	list := func(c *kms.Client, principal string) (*kms.ListRetirableGrantsOutput, error) {
		return c.ListRetirableGrants(ctx, &kms.ListRetirableGrantsInput{RetiringPrincipal: aws.String(principal)})
	}
	// Account B's administrator may not list account A's principal's grants.
	_, err := list(in.as("erin"), alice)
	if msg := wantCode(t, err, "AccessDeniedException"); !strings.Contains(msg, "kms:ListRetirableGrants") {
		t.Errorf("message: %s", msg)
	}
	// Its own principal's grants, on keys of any account, it may.
	out, err := list(in.as("erin"), erinARN)
	if err != nil || len(out.Grants) != 1 || !strings.Contains(*out.Grants[0].KeyId, ":111122223333:key/"+k) {
		t.Fatalf("erin's own retirable grants: %+v %v", out, err)
	}
	// Account A's administrator lists A's principal's grants.
	out, err = list(in.kms, alice)
	if err != nil || len(out.Grants) != 1 || *out.Grants[0].RetiringPrincipal != alice {
		t.Fatalf("admin lists alice's: %+v %v", out, err)
	}
	// Without kms:ListRetirableGrants, not even one's own.
	_, err = list(in.as("alice"), alice)
	wantCode(t, err, "AccessDeniedException")
}

// TestAccountRootGrantee checks the rule for grants to an account: like a
// key policy statement naming an account's root, the grant delegates to
// the account, whose principals need an identity policy allowing the
// operation on the key. A grant to a specific user needs none.
func TestAccountRootGrantee(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	k := in.createKey("granted to account B")
	arn := "arn:aws:kms:us-east-1:111122223333:key/" + k
	carol, dave := in.as("carol"), in.as("dave") // carol's identity policy allows Encrypt/Decrypt on A's keys; dave's nothing
	enc, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("for B")})
	if err != nil {
		t.Fatal(err)
	}
	// Before any grant: the key policy does not trust account B.
	_, err = carol.Decrypt(ctx, &kms.DecryptInput{KeyId: &arn, CiphertextBlob: enc.CiphertextBlob})
	wantCode(t, err, "AccessDeniedException")

	if _, err := in.kms.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: &k, GranteePrincipal: aws.String("arn:aws:iam::444455556666:root"),
		Operations: []types.GrantOperation{types.GrantOperationDecrypt, types.GrantOperationEncrypt}}); err != nil {
		t.Fatal(err)
	}
	// A user of account B with no identity policy gets nothing from it.
	_, err = dave.Decrypt(ctx, &kms.DecryptInput{KeyId: &arn, CiphertextBlob: enc.CiphertextBlob})
	if msg := wantCode(t, err, "AccessDeniedException"); !strings.Contains(msg, "no identity-based policy allows the kms:Decrypt action") {
		t.Errorf("message: %s", msg)
	}
	_, err = dave.Encrypt(ctx, &kms.EncryptInput{KeyId: &arn, Plaintext: []byte("x")})
	wantCode(t, err, "AccessDeniedException")
	// A user whose identity policy allows the operation on the key may.
	dec, err := carol.Decrypt(ctx, &kms.DecryptInput{KeyId: &arn, CiphertextBlob: enc.CiphertextBlob})
	if err != nil || string(dec.Plaintext) != "for B" {
		t.Fatalf("carol through the account grant: %v", err)
	}
	// The refusal is recorded with the reason.
	found := false
	for _, r := range in.records() {
		if e := r.Event; e.Operation == "Decrypt" && e.Refused() && e.Actor.PrincipalARN == "arn:aws:iam::444455556666:user/dave" {
			found = strings.Contains(e.Error.Reason, "names the account root")
		}
	}
	if !found {
		t.Error("dave's refusal is not recorded with the account-grant reason")
	}

	// A grant to dave himself needs no identity policy.
	if _, err := in.kms.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: &k, GranteePrincipal: aws.String("arn:aws:iam::444455556666:user/dave"),
		Operations: []types.GrantOperation{types.GrantOperationDecrypt}}); err != nil {
		t.Fatal(err)
	}
	if _, err := dave.Decrypt(ctx, &kms.DecryptInput{KeyId: &arn, CiphertextBlob: enc.CiphertextBlob}); err != nil {
		t.Fatalf("dave through his own grant: %v", err)
	}

	// The same rule within the key's account: a grant to A's root does not
	// let alice (no identity policy) in.
	if _, err := in.kms.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: &k, GranteePrincipal: aws.String("arn:aws:iam::111122223333:root"),
		Operations: []types.GrantOperation{types.GrantOperationDecrypt}}); err != nil {
		t.Fatal(err)
	}
	_, err = in.as("alice").Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	wantCode(t, err, "AccessDeniedException")
}

// TestTimeTravelWhoCouldDecryptScope checks that "who could decrypt" in a
// key's time travel does not list another account's principals that the
// key's account did not name itself: account B's administrator may write a
// key policy trusting account A, but the answer must not turn that into a
// list of A's users and of which of A's identity policies allow Decrypt. A
// principal of A named in one of B's grants B knows already.
func TestTimeTravelWhoCouldDecryptScope(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	erin := in.as("erin")
	out, err := erin.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("B's key trusting A")})
	if err != nil {
		t.Fatal(err)
	}
	keyB := *out.KeyMetadata.KeyId
	doc := `{"Statement":[{"Sid":"B","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"},` +
		`{"Sid":"A","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:Decrypt","Resource":"*"}]}`
	if _, err := erin.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: &keyB, Policy: &doc}); err != nil {
		t.Fatal(err)
	}
	for _, guess := range []string{"alice", "nosuchuser"} {
		if _, err := erin.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: &keyB, GranteePrincipal: aws.String("arn:aws:iam::111122223333:user/" + guess),
			Operations: []types.GrantOperation{types.GrantOperationDecrypt}}); err != nil {
			t.Fatal(err)
		}
	}
	status, body := getAudit(t, in, "erin", "/audit/keys/"+keyB)
	var ans timetravel.Answer
	if status != 200 || json.Unmarshal(body, &ans) != nil || !ans.Exists {
		t.Fatalf("erin's time travel on her key: %d %s", status, body)
	}
	var who []string
	for _, a := range ans.WhoCanDecrypt {
		who = append(who, a.Principal)
	}
	if want := []string{"arn:aws:iam::111122223333:user/alice", "arn:aws:iam::444455556666:user/erin"}; !slices.Equal(who, want) {
		t.Errorf("who could decrypt: %v, want %v (A's admin only through its identity policy)", who, want)
	}
}
