package tests

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/keyledger/keyledger/projections/timetravel"
)

func TestTimeTravel(t *testing.T) {
	port := freePort(t)
	startNATS(t, t.TempDir(), port)
	natsURL := "nats://127.0.0.1:" + strconv.Itoa(port)
	in := start(t, withNATS(natsURL))
	ctx := context.Background()
	t0 := in.clock.Now()
	k := in.createKey("history")
	in.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/history"), TargetKeyId: &k})
	in.clock.Advance(time.Hour)
	putPolicy(t, in, k, `{"Statement":[`+adminStatement+`,
	 {"Sid":"AliceDecrypts","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:Decrypt","Resource":"*"}]}`)
	in.clock.Advance(time.Hour)
	in.kms.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: &k, GranteePrincipal: aws.String("arn:aws:iam::444455556666:user/dave"),
		Operations: []types.GrantOperation{types.GrantOperationDecrypt}})
	in.clock.Advance(time.Hour)
	in.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: &k})

	ask := func(at time.Time) timetravel.Answer {
		t.Helper()
		path := "/audit/keys/" + k + "?asOf=" + url.QueryEscape(at.Format(time.RFC3339))
		status, body := getAudit(t, in, "admin", path)
		var ans timetravel.Answer
		if status != 200 || json.Unmarshal(body, &ans) != nil {
			t.Fatalf("as-of %v: %d %s", at, status, body)
		}
		return ans
	}
	who := func(a timetravel.Answer) string {
		var ps []string
		for _, w := range a.WhoCanDecrypt {
			ps = append(ps, w.Principal[strings.LastIndex(w.Principal, "/")+1:])
		}
		return strings.Join(ps, ",")
	}
	if a := ask(t0.Add(-time.Minute)); a.Exists {
		t.Fatal("the key existed before it was created")
	}
	a := ask(t0.Add(30 * time.Minute))
	if !a.Exists || a.Key.State != "Enabled" || len(a.Key.Aliases) != 1 || strings.Contains(string(a.Key.Policy), "AliceDecrypts") {
		t.Fatalf("at +30m: %+v", a.Key)
	}
	// Default policy: the account's IAM policies decide: admin and bob.
	if w := who(a); !strings.Contains(w, "admin") || !strings.Contains(w, "bob") || strings.Contains(w, "alice") || strings.Contains(w, "dave") {
		t.Fatalf("who could decrypt at +30m: %s", w)
	}
	a = ask(t0.Add(90 * time.Minute))
	if w := who(a); !strings.Contains(w, "alice") || strings.Contains(w, "dave") {
		t.Fatalf("who could decrypt at +90m: %s", w)
	}
	a = ask(t0.Add(150 * time.Minute))
	if w := who(a); !strings.Contains(w, "dave") || len(a.Key.Grants) != 1 {
		t.Fatalf("who could decrypt at +150m: %s (%d grants)", w, len(a.Key.Grants))
	}
	if a = ask(t0.Add(4 * time.Hour)); a.Key.State != "Disabled" {
		t.Fatalf("at +4h: %s", a.Key.State)
	}
	// The CLI answers the same from the ledger.
	code, out := cli(t, "keys", "describe", k, "--as-of", t0.Add(90*time.Minute).Format(time.RFC3339), "--nats-url", natsURL)
	var cliAns timetravel.Answer
	if code != 0 || json.Unmarshal([]byte(out), &cliAns) != nil || !strings.Contains(who(cliAns), "alice") || cliAns.Key.State != "Enabled" {
		t.Fatalf("keys describe: %d %s", code, out)
	}
}
