package tests

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/keyledger/keyledger/ledger/event"
)

func TestAuthentication(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	k := in.createKey("auth")
	admin := testCredentials["admin"]
	_, err := newClient(in.endpoint, admin[0], "not-the-secret-at-all").ListKeys(ctx, &kms.ListKeysInput{})
	wantCode(t, err, "InvalidSignatureException")
	_, err = newClient(in.endpoint, "AKIANOBODY0000001", "whatever-secret-000001").ListKeys(ctx, &kms.ListKeysInput{})
	wantCode(t, err, "UnrecognizedClientException")
	// Temporary credentials: keyledger issues none, so a session token is refused.
	withToken := kms.New(kms.Options{Region: testRegion, BaseEndpoint: aws.String(in.endpoint), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(admin[0], admin[1], "FQoGZXIvYXdzEXAMPLETOKEN")})
	_, err = withToken.ListKeys(ctx, &kms.ListKeysInput{})
	wantCode(t, err, "UnrecognizedClientException")
	// Credentials scoped to another region.
	other := kms.New(kms.Options{Region: "eu-west-1", BaseEndpoint: aws.String(in.endpoint), Credentials: in.kms.Options().Credentials, RetryMaxAttempts: 1})
	_, err = other.ListKeys(ctx, &kms.ListKeysInput{})
	wantCode(t, err, "InvalidSignatureException")

	body := `{"KeyId":"` + k + `","Plaintext":"aGVsbG8="}`
	// Stale: signed 20 minutes ago (every signed header sent as signed).
	stale, _ := http.NewRequest("POST", in.endpoint+"/", strings.NewReader(body))
	stale.Header.Set("X-Amz-Target", "TrentService.Encrypt")
	stale.Header.Set("Content-Type", "application/x-amz-json-1.1")
	signRequest(stale, "admin", []byte(body), time.Now().Add(-20*time.Minute))
	resp, err := http.DefaultClient.Do(stale)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code := resp.Header.Get("X-Amzn-ErrorType"); resp.StatusCode != 400 || (code != "IncompleteSignatureException" && code != "InvalidSignatureException") {
		t.Fatalf("stale signature: %d %s", resp.StatusCode, code)
	}
	// The body changed after signing.
	req, _ := http.NewRequest("POST", in.endpoint+"/", strings.NewReader(body))
	req.Header.Set("X-Amz-Target", "TrentService.Encrypt")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	signRequest(req, "admin", []byte(body), time.Now())
	tampered := strings.Replace(body, "aGVsbG8=", "aGVsbG9=", 1)
	tampReq, _ := http.NewRequest("POST", in.endpoint+"/", strings.NewReader(tampered))
	tampReq.Header = req.Header.Clone()
	resp, err = http.DefaultClient.Do(tampReq)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 || resp.Header.Get("X-Amzn-ErrorType") != "InvalidSignatureException" {
		t.Fatalf("tampered body: %d %s", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"))
	}
	// A correctly signed raw request passes.
	good, _ := http.NewRequest("POST", in.endpoint+"/", strings.NewReader(body))
	good.Header.Set("X-Amz-Target", "TrentService.Encrypt")
	good.Header.Set("Content-Type", "application/x-amz-json-1.1")
	signRequest(good, "admin", []byte(body), time.Now())
	resp, err = http.DefaultClient.Do(good)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("signed raw request: %v %v", resp.StatusCode, err)
	}
	resp.Body.Close()
}

// denials returns the AccessDenied refusals recorded for op.
func denials(in *instance, op string) []*event.Event {
	var out []*event.Event
	for _, r := range in.records() {
		if r.Event.Operation == op && r.Event.Error != nil && r.Event.Error.Code == "AccessDeniedException" {
			out = append(out, r.Event)
		}
	}
	return out
}

func putPolicy(t *testing.T, in *instance, key, doc string) {
	t.Helper()
	if _, err := in.kms.PutKeyPolicy(context.Background(), &kms.PutKeyPolicyInput{KeyId: &key, Policy: &doc}); err != nil {
		t.Fatalf("PutKeyPolicy: %v", err)
	}
}

const adminStatement = `{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}`

func TestKeyPolicyAndIAM(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	k := in.createKey("policies")
	alice, bob := in.as("alice"), in.as("bob")

	// Default key policy: the account's IAM policies decide.
	_, err := alice.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x")})
	msg := wantCode(t, err, "AccessDeniedException")
	if !strings.Contains(msg, "arn:aws:iam::111122223333:user/alice is not authorized to perform: kms:Encrypt on resource: arn:aws:kms:us-east-1:111122223333:key/"+k) {
		t.Fatalf("message shape: %s", msg)
	}
	enc, err := bob.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("bob's")})
	if err != nil {
		t.Fatalf("bob's IAM policy allows Encrypt: %v", err)
	}
	_, err = bob.DisableKey(ctx, &kms.DisableKeyInput{KeyId: &k})
	wantCode(t, err, "AccessDeniedException")
	_, err = bob.CreateKey(ctx, &kms.CreateKeyInput{})
	wantCode(t, err, "AccessDeniedException")
	d := denials(in, "Encrypt")
	if len(d) != 1 || d[0].KeyID != k || d[0].Actor.PrincipalARN != "arn:aws:iam::111122223333:user/alice" || !strings.Contains(d[0].Error.Reason, "identity policy") {
		t.Fatalf("denial record: %+v", d)
	}

	// Nothing about the key leaks to one who may not use it: a disabled key
	// still answers AccessDenied, not DisabledException.
	in.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: &k})
	_, err = alice.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x")})
	wantCode(t, err, "AccessDeniedException")
	in.kms.EnableKey(ctx, &kms.EnableKeyInput{KeyId: &k})

	// The key policy names alice: no IAM policy needed.
	putPolicy(t, in, k, `{"Version":"2012-10-17","Statement":[`+adminStatement+`,
	 {"Sid":"KeyUser","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*",
	  "Condition":{"StringEquals":{"kms:EncryptionContext:dept":"it"}}},
	 {"Sid":"NoDecryptForBob","Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111122223333:user/bob"},"Action":"kms:Decrypt","Resource":"*"}]}`)
	if _, err := alice.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x"), EncryptionContext: map[string]string{"dept": "it"}}); err != nil {
		t.Fatalf("alice with the right context: %v", err)
	}
	_, err = alice.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x"), EncryptionContext: map[string]string{"dept": "hr"}})
	wantCode(t, err, "AccessDeniedException")
	_, err = alice.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: &k, KeySpec: types.DataKeySpecAes256, EncryptionContext: map[string]string{"dept": "it"}})
	wantCode(t, err, "AccessDeniedException")
	// Explicit deny beats bob's IAM allow.
	_, err = bob.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	msg = wantCode(t, err, "AccessDeniedException")
	if !strings.Contains(msg, "explicit deny in a resource-based policy") {
		t.Fatalf("explicit deny message: %s", msg)
	}
	if d := denials(in, "Decrypt"); len(d) == 0 || !strings.Contains(d[len(d)-1].Error.Reason, `"NoDecryptForBob"`) {
		t.Fatalf("the denying statement is not recorded: %+v", d)
	}
	got, _ := in.kms.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: &k})
	if !strings.Contains(*got.Policy, "NoDecryptForBob") {
		t.Fatal("GetKeyPolicy does not return the new policy")
	}
}

func TestPolicyLockoutAndValidation(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	k := in.createKey("lockout")
	aliceOnly := `{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:*","Resource":"*"}]}`
	_, err := in.kms.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: &k, Policy: &aliceOnly})
	msg := wantCode(t, err, "MalformedPolicyDocumentException")
	if !strings.Contains(msg, "will not allow you to update the key policy in the future") {
		t.Fatalf("lockout message: %s", msg)
	}
	for name, doc := range map[string]string{
		"no principal":      `{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}`,
		"unknown principal": `{"Statement":[` + adminStatement + `,{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/mallory"},"Action":"kms:*","Resource":"*"}]}`,
		"not json":          `{"Statement":`,
	} {
		_, err := in.kms.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: &k, Policy: aws.String(doc)})
		if err == nil {
			t.Fatalf("%s accepted", name)
		}
		wantCode(t, err, "MalformedPolicyDocumentException")
	}
	_, err = in.kms.CreateKey(ctx, &kms.CreateKeyInput{Policy: &aliceOnly})
	wantCode(t, err, "MalformedPolicyDocumentException")
	// Bypassing the check hands the key to alice alone.
	if _, err := in.kms.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: &k, Policy: &aliceOnly, BypassPolicyLockoutSafetyCheck: true}); err != nil {
		t.Fatal(err)
	}
	_, err = in.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &k})
	wantCode(t, err, "AccessDeniedException")
	if _, err := in.as("alice").DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &k}); err != nil {
		t.Fatalf("alice after handover: %v", err)
	}
}

func TestGrants(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	k := in.createKey("grants")
	alice, bob := in.as("alice"), in.as("bob")
	g, err := in.kms.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: &k, GranteePrincipal: aws.String("arn:aws:iam::111122223333:user/alice"),
		RetiringPrincipal: aws.String("arn:aws:iam::111122223333:user/bob"), Name: aws.String("app"),
		Operations:  []types.GrantOperation{types.GrantOperationEncrypt, types.GrantOperationDecrypt},
		Constraints: &types.GrantConstraints{EncryptionContextSubset: map[string]string{"app": "billing"}}})
	if err != nil {
		t.Fatal(err)
	}
	ec := map[string]string{"app": "billing", "extra": "ok"}
	enc, err := alice.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("granted"), EncryptionContext: ec, GrantTokens: []string{*g.GrantToken}})
	if err != nil {
		t.Fatalf("grant does not allow Encrypt: %v", err)
	}
	if _, err := alice.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ec}); err != nil {
		t.Fatalf("grant does not allow Decrypt: %v", err)
	}
	_, err = alice.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x"), EncryptionContext: map[string]string{"app": "other"}})
	wantCode(t, err, "AccessDeniedException")
	_, err = alice.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: &k, KeySpec: types.DataKeySpecAes256, EncryptionContext: ec})
	wantCode(t, err, "AccessDeniedException") // not an operation of the grant
	_, err = alice.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x"), EncryptionContext: ec, GrantTokens: []string{"forged-token"}})
	wantCode(t, err, "InvalidGrantTokenException")
	_, err = in.kms.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: &k, GranteePrincipal: aws.String("arn:aws:iam::111122223333:user/alice"),
		Operations: []types.GrantOperation{types.GrantOperationSign}})
	wantCode(t, err, "ValidationException") // Sign on a symmetric key

	list, err := in.kms.ListGrants(ctx, &kms.ListGrantsInput{KeyId: &k})
	if err != nil || len(list.Grants) != 1 || *list.Grants[0].GrantId != *g.GrantId || *list.Grants[0].Name != "app" ||
		*list.Grants[0].IssuingAccount != "arn:aws:iam::111122223333:root" || list.Grants[0].Constraints == nil {
		t.Fatalf("ListGrants: %+v %v", list, err)
	}
	ret, err := in.kms.ListRetirableGrants(ctx, &kms.ListRetirableGrantsInput{RetiringPrincipal: aws.String("arn:aws:iam::111122223333:user/bob")})
	if err != nil || len(ret.Grants) != 1 {
		t.Fatalf("ListRetirableGrants: %+v %v", ret, err)
	}
	// alice is not the retiring principal; bob is.
	_, err = alice.RetireGrant(ctx, &kms.RetireGrantInput{GrantToken: g.GrantToken})
	wantCode(t, err, "AccessDeniedException")
	if _, err := bob.RetireGrant(ctx, &kms.RetireGrantInput{GrantToken: g.GrantToken}); err != nil {
		t.Fatalf("retiring principal cannot retire: %v", err)
	}
	_, err = alice.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x"), EncryptionContext: ec})
	wantCode(t, err, "AccessDeniedException")

	// RevokeGrant needs the key's policies, not the grant.
	g2, _ := in.kms.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: &k, GranteePrincipal: aws.String("arn:aws:iam::111122223333:user/alice"),
		Operations: []types.GrantOperation{types.GrantOperationDescribeKey}})
	if _, err := alice.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &k}); err != nil {
		t.Fatalf("DescribeKey grant: %v", err)
	}
	_, err = alice.RevokeGrant(ctx, &kms.RevokeGrantInput{KeyId: &k, GrantId: g2.GrantId})
	wantCode(t, err, "AccessDeniedException")
	if _, err := in.kms.RevokeGrant(ctx, &kms.RevokeGrantInput{KeyId: &k, GrantId: g2.GrantId}); err != nil {
		t.Fatal(err)
	}
	_, err = alice.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &k})
	wantCode(t, err, "AccessDeniedException")
	// Grants survive a restart.
	g3, _ := in.kms.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: &k, GranteePrincipal: aws.String("arn:aws:iam::111122223333:user/alice"),
		Operations: []types.GrantOperation{types.GrantOperationDescribeKey}})
	in.restart()
	if _, err := in.as("alice").DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &k, GrantTokens: []string{*g3.GrantToken}}); err != nil {
		t.Fatalf("grant after restart: %v", err)
	}
}

func TestCrossAccount(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	k := in.createKey("shared")
	arn := "arn:aws:kms:us-east-1:111122223333:key/" + k
	carol, dave := in.as("carol"), in.as("dave")
	// Not shared yet: carol's IAM policy alone is not enough.
	_, err := carol.Encrypt(ctx, &kms.EncryptInput{KeyId: &arn, Plaintext: []byte("x")})
	wantCode(t, err, "AccessDeniedException")
	putPolicy(t, in, k, `{"Statement":[`+adminStatement+`,
	 {"Sid":"ShareWithB","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":["kms:Encrypt","kms:Decrypt","kms:DescribeKey"],"Resource":"*"}]}`)
	enc, err := carol.Encrypt(ctx, &kms.EncryptInput{KeyId: &arn, Plaintext: []byte("shared data")})
	if err != nil {
		t.Fatalf("cross-account Encrypt: %v", err)
	}
	dec, err := carol.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	if err != nil || string(dec.Plaintext) != "shared data" {
		t.Fatalf("cross-account Decrypt: %v", err)
	}
	// dave's account is trusted, but dave's IAM policy allows nothing.
	_, err = dave.Encrypt(ctx, &kms.EncryptInput{KeyId: &arn, Plaintext: []byte("x")})
	wantCode(t, err, "AccessDeniedException")
	// A bare key id is looked up in the caller's own account.
	_, err = carol.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x")})
	wantCode(t, err, "NotFoundException")
	// Outside the shared actions.
	_, err = carol.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &arn})
	wantCode(t, err, "AccessDeniedException")
	// carol's ListKeys shows her own account's keys only.
	keys, err := carol.ListKeys(ctx, &kms.ListKeysInput{})
	if err == nil && len(keys.Keys) != 0 {
		t.Fatalf("carol lists A's keys: %+v", keys.Keys)
	}
}

func TestConditionKeysEndToEnd(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	k := in.createKey("abac")
	in.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/finance-app"), TargetKeyId: &k})
	in.kms.TagResource(ctx, &kms.TagResourceInput{KeyId: &k, Tags: []types.Tag{{TagKey: aws.String("Project"), TagValue: aws.String("Alpha")}}})
	putPolicy(t, in, k, `{"Statement":[`+adminStatement+`,
	 {"Sid":"AliceByAliasAndTag","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:Encrypt","Resource":"*",
	  "Condition":{"StringLike":{"kms:RequestAlias":"alias/finance*"},"StringEquals":{"aws:ResourceTag/Project":"Alpha","kms:EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}}},
	 {"Sid":"OnlyFromTheOffice","Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111122223333:user/bob"},"Action":"kms:*","Resource":"*",
	  "Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}`)
	alice := in.as("alice")
	if _, err := alice.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("alias/finance-app"), Plaintext: []byte("x")}); err != nil {
		t.Fatalf("by alias with the tag: %v", err)
	}
	_, err := alice.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x")})
	wantCode(t, err, "AccessDeniedException") // not through the alias
	in.kms.TagResource(ctx, &kms.TagResourceInput{KeyId: &k, Tags: []types.Tag{{TagKey: aws.String("Project"), TagValue: aws.String("Beta")}}})
	_, err = alice.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("alias/finance-app"), Plaintext: []byte("x")})
	wantCode(t, err, "AccessDeniedException") // the tag changed (ABAC)
	_, err = in.as("bob").Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x")})
	wantCode(t, err, "AccessDeniedException") // 127.0.0.1 is not in 10.0.0.0/8
}

// TestSigningConditionKeys: kms:SigningAlgorithm and kms:MessageType reach
// the key policy of a Sign request.
func TestSigningConditionKeys(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	out, err := in.kms.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: types.KeySpecEccNistP256, KeyUsage: types.KeyUsageTypeSignVerify})
	if err != nil {
		t.Fatal(err)
	}
	k := *out.KeyMetadata.KeyId
	putPolicy(t, in, k, `{"Statement":[`+adminStatement+`,
	 {"Sid":"DigestsOnly","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:Sign","Resource":"*",
	  "Condition":{"StringEquals":{"kms:SigningAlgorithm":"ECDSA_SHA_256","kms:MessageType":"DIGEST"}}}]}`)
	alice := in.as("alice")
	digest := make([]byte, 32)
	if _, err := alice.Sign(ctx, &kms.SignInput{KeyId: &k, Message: digest, MessageType: types.MessageTypeDigest,
		SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256}); err != nil {
		t.Fatalf("a digest with ECDSA_SHA_256: %v", err)
	}
	_, err = alice.Sign(ctx, &kms.SignInput{KeyId: &k, Message: digest, SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256})
	wantCode(t, err, "AccessDeniedException") // RAW
	_, err = alice.Sign(ctx, &kms.SignInput{KeyId: &k, Message: make([]byte, 48), MessageType: types.MessageTypeDigest,
		SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha384})
	wantCode(t, err, "AccessDeniedException") // the policy is decided before the algorithm is checked against the key
}

// TestPrincipalsChangesAreRecorded: the principals configuration is in the
// ledger once, and again only when it changes.
func TestPrincipalsChangesAreRecorded(t *testing.T) {
	in := start(t)
	count := func() (n int, last *event.PrincipalsConfigured) {
		for _, r := range in.records() {
			if b, ok := r.Event.Body.(*event.PrincipalsConfigured); ok {
				n, last = n+1, b
			}
		}
		return n, last
	}
	n, last := count()
	if n != 1 || !strings.Contains(last.Summary, "arn:aws:iam::444455556666:user/carol") || strings.Contains(last.Summary, "secret") {
		t.Fatalf("%d PrincipalsConfigured events; summary %q", n, last.Summary)
	}
	in.restart()
	if n, _ := count(); n != 1 {
		t.Fatalf("an unchanged configuration was recorded again (%d events)", n)
	}
}

// TestGrantDerivedGrants: a grantee with CreateGrant in its grant may pass
// on only the operations of that grant.
func TestGrantDerivedGrants(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	k := in.createKey("delegation")
	if _, err := in.kms.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: &k, GranteePrincipal: aws.String("arn:aws:iam::111122223333:user/alice"),
		Operations: []types.GrantOperation{types.GrantOperationEncrypt, types.GrantOperationCreateGrant}}); err != nil {
		t.Fatal(err)
	}
	alice := in.as("alice")
	if _, err := alice.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: &k, GranteePrincipal: aws.String("arn:aws:iam::444455556666:user/dave"),
		Operations: []types.GrantOperation{types.GrantOperationEncrypt}}); err != nil {
		t.Fatalf("passing on Encrypt: %v", err)
	}
	_, err := alice.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: &k, GranteePrincipal: aws.String("arn:aws:iam::444455556666:user/dave"),
		Operations: []types.GrantOperation{types.GrantOperationDecrypt}})
	wantCode(t, err, "AccessDeniedException")
}

// TestKeyPolicyNamesAnElementOnce checks that a key policy naming a
// statement element twice is refused. encoding/json matches names
// case-insensitively and keeps the last: a statement that reads (and comes
// back from GetKeyPolicy) as "Effect":"Deny" for account B but ends in
// "effect":"Allow" would let B in while every reader sees a Deny.
func TestKeyPolicyNamesAnElementOnce(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	k := in.createKey("deny partner")
	enc, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("secret")})
	if err != nil {
		t.Fatal(err)
	}
	deny := `{"Sid":"DenyPartner","Effect":"Deny","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"kms:*","Resource":"*"`
	for _, doc := range []string{
		`{"Statement":[` + adminStatement + `,` + deny + `,"effect":"Allow"}]}`,
		`{"Statement":[` + adminStatement + `,` + deny + `,"Effect":"Allow"}]}`,
		`{"Statement":[` + adminStatement + `,` + deny + `,"Principal":{"AWS":"arn:aws:iam::444455556666:root","aws":"arn:aws:iam::111122223333:user/alice"}}]}`,
		`{"Statement":[` + adminStatement + `],"statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}]}`,
	} {
		_, err := in.kms.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: &k, Policy: aws.String(doc)})
		wantCode(t, err, "MalformedPolicyDocumentException")
		_, err = in.kms.CreateKey(ctx, &kms.CreateKeyInput{Policy: aws.String(doc)})
		wantCode(t, err, "MalformedPolicyDocumentException")
	}
	arn := "arn:aws:kms:us-east-1:111122223333:key/" + k
	_, err = in.as("erin").Decrypt(ctx, &kms.DecryptInput{KeyId: &arn, CiphertextBlob: enc.CiphertextBlob})
	wantCode(t, err, "AccessDeniedException")
}
