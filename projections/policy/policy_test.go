package policy

import (
	"strings"
	"testing"
)

const (
	acct  = "111122223333"
	alice = "arn:aws:iam::111122223333:user/alice"
	bob   = "arn:aws:iam::111122223333:user/bob"
	carol = "arn:aws:iam::444455556666:user/carol"
	key   = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
)

func req(principal, action string, ctx map[string][]string) Request {
	account := strings.Split(principal, ":")[4]
	return Request{Principal: Principal{ARN: principal, Account: account}, Action: action, Resource: key, Context: values(ctx)}
}

type outcome string

const (
	deny     outcome = "deny"
	allow    outcome = "allow"
	delegate outcome = "delegate" // allowed for the account: IAM decides
	none     outcome = "none"
)

func decide(r Result) outcome {
	switch {
	case r.Deny != nil:
		return deny
	case r.Allow != nil:
		return allow
	case r.AllowAccount != nil:
		return delegate
	}
	return none
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name, source, policy string
		req                  Request
		want                 outcome
	}{
		{"default key policy delegates to IAM",
			"KMS Developer Guide, Default key policy: allows access to the AWS account and enables IAM policies",
			`{"Version":"2012-10-17","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}`,
			req(alice, "kms:Encrypt", nil), delegate},
		{"bare account id is the account",
			"IAM User Guide, AWS JSON policy elements: Principal (AWS account principals)",
			`{"Statement":[{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"kms:*","Resource":"*"}]}`,
			req(alice, "kms:Encrypt", nil), delegate},
		{"key policy names the user",
			"KMS Developer Guide, Key policies: allows key users to use the KMS key",
			`{"Statement":[{"Sid":"Allow use of the key","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:user/alice"]},"Action":["kms:Encrypt","kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*","kms:DescribeKey"],"Resource":"*"}]}`,
			req(alice, "kms:ReEncryptFrom", nil), allow},
		{"another user is not named",
			"KMS Developer Guide, Key policies: allows key users to use the KMS key",
			`{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:*","Resource":"*"}]}`,
			req(bob, "kms:Encrypt", nil), none},
		{"explicit deny wins over allow",
			"IAM User Guide, Policy evaluation logic: an explicit deny overrides any allow",
			`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"},{"Sid":"NoDecrypt","Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:Decrypt","Resource":"*"}]}`,
			req(alice, "kms:Decrypt", nil), deny},
		{"NotAction allows everything else",
			"IAM User Guide, IAM JSON policy elements: NotAction",
			`{"Statement":[{"Effect":"Allow","Principal":"*","NotAction":["kms:Decrypt","kms:ScheduleKeyDeletion"],"Resource":"*"}]}`,
			req(alice, "kms:Decrypt", nil), none},
		{"NotAction: other actions allowed",
			"IAM User Guide, IAM JSON policy elements: NotAction",
			`{"Statement":[{"Effect":"Allow","Principal":"*","NotAction":"kms:Decrypt","Resource":"*"}]}`,
			req(alice, "kms:Encrypt", nil), allow},
		{"action wildcard, case-insensitive",
			"IAM User Guide, IAM JSON policy elements: Action (wildcards; action names are not case sensitive)",
			`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"KMS:generate*","Resource":"*"}]}`,
			req(alice, "kms:GenerateDataKeyWithoutPlaintext", nil), allow},
		{"NotPrincipal deny spares the named principal",
			"IAM User Guide, IAM JSON policy elements: NotPrincipal (with Effect Deny)",
			`{"Statement":[{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:*","Resource":"*"},{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}]}`,
			req(alice, "kms:Encrypt", nil), allow},
		{"NotPrincipal deny hits others",
			"IAM User Guide, IAM JSON policy elements: NotPrincipal (with Effect Deny)",
			`{"Statement":[{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:*","Resource":"*"}]}`,
			req(bob, "kms:Encrypt", nil), deny},
		{"resource mismatch",
			"IAM User Guide, IAM JSON policy elements: Resource",
			`{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"arn:aws:kms:us-east-1:111122223333:key/other"}]}`,
			req(alice, "kms:Encrypt", nil), none},
		{"identity policy with key ARN wildcard",
			"KMS Developer Guide, IAM policy examples: Allow a user to use KMS keys in one account",
			`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:Encrypt","kms:Decrypt"],"Resource":"arn:aws:kms:*:111122223333:key/*"}]}`,
			req(alice, "kms:Decrypt", nil), allow},
		{"encryption context condition holds",
			"KMS Developer Guide, kms:EncryptionContext:context-key (StringEquals)",
			`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*","Condition":{"StringEquals":{"kms:EncryptionContext:Department":"IT"}}}]}`,
			req(alice, "kms:Decrypt", map[string][]string{"kms:encryptioncontext:department": {"IT"}}), allow},
		{"encryption context condition fails",
			"KMS Developer Guide, kms:EncryptionContext:context-key (StringEquals)",
			`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*","Condition":{"StringEquals":{"kms:EncryptionContext:Department":"IT"}}}]}`,
			req(alice, "kms:Decrypt", map[string][]string{"kms:encryptioncontext:department": {"HR"}}), none},
		{"ForAllValues context keys: subset holds",
			"KMS Developer Guide, kms:EncryptionContextKeys (ForAllValues:StringEquals)",
			`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:Encrypt","Resource":"*","Condition":{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["Department","Project"]}}}]}`,
			req(alice, "kms:Encrypt", map[string][]string{"kms:encryptioncontextkeys": {"Department"}}), allow},
		{"ForAllValues context keys: extra key fails",
			"KMS Developer Guide, kms:EncryptionContextKeys (ForAllValues:StringEquals)",
			`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:Encrypt","Resource":"*","Condition":{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["Department","Project"]}}}]}`,
			req(alice, "kms:Encrypt", map[string][]string{"kms:encryptioncontextkeys": {"Department", "Other"}}), none},
		{"ForAllValues holds with no context at all",
			"KMS Developer Guide, kms:EncryptionContextKeys: ForAllValues also allows requests with no encryption context",
			`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:Encrypt","Resource":"*","Condition":{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["Department"]}}}]}`,
			req(alice, "kms:Encrypt", nil), allow},
		{"Null false requires a context",
			"KMS Developer Guide, kms:EncryptionContextKeys: require an encryption context with Null",
			`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:Encrypt","Resource":"*","Condition":{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["Department"]},"Null":{"kms:EncryptionContextKeys":"false"}}}]}`,
			req(alice, "kms:Encrypt", nil), none},
		{"ForAnyValue context key",
			"KMS Developer Guide, kms:EncryptionContextKeys (ForAnyValue:StringEquals)",
			`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:Encrypt","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":"AppName"}}}]}`,
			req(alice, "kms:Encrypt", map[string][]string{"kms:encryptioncontextkeys": {"Other", "AppName"}}), allow},
		{"caller account",
			"KMS Developer Guide, kms:CallerAccount",
			`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringEquals":{"kms:CallerAccount":"111122223333"}}}]}`,
			req(carol, "kms:Encrypt", map[string][]string{"kms:calleraccount": {"444455556666"}}), none},
		{"source IP in range",
			"IAM User Guide, aws:SourceIp (IpAddress)",
			`{"Statement":[{"Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":["192.0.2.0/24","203.0.113.0/24"]}}}]}`,
			req(alice, "kms:Encrypt", map[string][]string{"aws:sourceip": {"198.51.100.7"}}), deny},
		{"source IP inside the range is not denied",
			"IAM User Guide, aws:SourceIp (IpAddress)",
			`{"Statement":[{"Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"192.0.2.0/24"}}}]}`,
			req(alice, "kms:Encrypt", map[string][]string{"aws:sourceip": {"192.0.2.44"}}), none},
		{"current time after a date",
			"IAM User Guide, Date condition operators (aws:CurrentTime)",
			`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2026-01-01T00:00:00Z"},"DateLessThan":{"aws:CurrentTime":"2027-01-01T00:00:00Z"}}}]}`,
			req(alice, "kms:Encrypt", map[string][]string{"aws:currenttime": {"2026-11-27T12:00:00Z"}}), allow},
		{"negated operator holds when the key is absent",
			"IAM User Guide, Condition operators: negated operators and missing keys",
			`{"Statement":[{"Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringNotEquals":{"kms:EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}}}]}`,
			req(alice, "kms:DescribeKey", nil), deny},
		{"IfExists passes an absent key",
			"IAM User Guide, ...IfExists condition operators",
			`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringEqualsIfExists":{"kms:EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}}}]}`,
			req(alice, "kms:DescribeKey", nil), allow},
		{"rotation period at most 180 days",
			"KMS Developer Guide, kms:RotationPeriodInDays (NumericLessThanEquals)",
			`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:EnableKeyRotation","Resource":"*","Condition":{"NumericLessThanEquals":{"kms:RotationPeriodInDays":"180"}}}]}`,
			req(alice, "kms:EnableKeyRotation", map[string][]string{"kms:rotationperiodindays": {"365"}}), none},
		{"grant only for AWS resources",
			"KMS Developer Guide, kms:GrantIsForAWSResource (Bool)",
			`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:CreateGrant","Resource":"*","Condition":{"Bool":{"kms:GrantIsForAWSResource":true}}}]}`,
			req(alice, "kms:CreateGrant", map[string][]string{"kms:grantisforawsresource": {"false"}}), none},
		{"request alias with a wildcard",
			"KMS Developer Guide, kms:RequestAlias (StringLike)",
			`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:Encrypt","Resource":"*","Condition":{"StringLike":{"kms:RequestAlias":"alias/finance*"}}}]}`,
			req(alice, "kms:Encrypt", map[string][]string{"kms:requestalias": {"alias/finance-key"}}), allow},
		{"ABAC resource tag",
			"KMS Developer Guide, ABAC for AWS KMS: aws:ResourceTag",
			`{"Statement":[{"Effect":"Allow","Action":"kms:Encrypt","Resource":"*","Condition":{"StringEquals":{"aws:ResourceTag/Project":"Alpha"}}}]}`,
			req(alice, "kms:Encrypt", map[string][]string{"aws:resourcetag/project": {"Beta"}}), none},
		{"grant operations limited",
			"KMS Developer Guide, kms:GrantOperations (ForAllValues:StringEquals)",
			`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:CreateGrant","Resource":"*","Condition":{"ForAllValues:StringEquals":{"kms:GrantOperations":["Encrypt","Decrypt"]}}}]}`,
			req(alice, "kms:CreateGrant", map[string][]string{"kms:grantoperations": {"Decrypt", "Sign"}}), none},
		{"principal ARN condition",
			"IAM User Guide, aws:PrincipalArn (ArnLike)",
			`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:user/a*"}}}]}`,
			req(alice, "kms:Encrypt", map[string][]string{"aws:principalarn": {alice}}), allow},
		{"cross-account: the key policy names the other account",
			"KMS Developer Guide, Allowing users in other accounts to use a KMS key",
			`{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*"}]}`,
			req(carol, "kms:Decrypt", nil), delegate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Parse(tt.policy)
			if err != nil {
				t.Fatalf("parse (%s): %v", tt.source, err)
			}
			if got := decide(doc.Evaluate(tt.req)); got != tt.want {
				t.Fatalf("got %s, want %s (source: %s)", got, tt.want, tt.source)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	for name, p := range map[string]string{
		"not json":          `{"Statement":`,
		"no statement":      `{"Version":"2012-10-17"}`,
		"bad effect":        `{"Statement":[{"Effect":"Maybe","Action":"kms:*","Resource":"*"}]}`,
		"no action":         `{"Statement":[{"Effect":"Allow","Resource":"*"}]}`,
		"both actions":      `{"Statement":[{"Effect":"Allow","Action":"a","NotAction":"b","Resource":"*"}]}`,
		"no resource":       `{"Statement":[{"Effect":"Allow","Action":"kms:*"}]}`,
		"bad operator":      `{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"StringSorta":{"a":"b"}}}]}`,
		"bad principal":     `{"Statement":[{"Effect":"Allow","Principal":"alice","Action":"kms:*","Resource":"*"}]}`,
		"bad principal arn": `{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:s3:::bucket"},"Action":"kms:*","Resource":"*"}]}`,
		"bad version":       `{"Version":"2099-01-01","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}`,
		"bad numeric value": `{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"NumericLessThan":{"a":"ten"}}}]}`,
		"bad cidr":          `{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"999.0.0.0/8"}}}]}`,
		"too large":         `{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*","Sid":"` + strings.Repeat("x", MaxSize) + `"}]}`,
		"unknown qualifier": `{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"ForSomeValues:StringEquals":{"a":"b"}}}]}`,
	} {
		if _, err := Parse(p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{{"*", "", true}, {"a*c", "abbbc", true}, {"a*c", "abbb", false}, {"a?c", "abc", true}, {"a?c", "ac", false},
		{"*key/*", "arn:key/1", true}, {"kms:*Key*", "kms:GenerateDataKeyPair", true}, {"abc", "abcd", false}} {
		if got := glob(tc.p, tc.s); got != tc.want {
			t.Errorf("glob(%q, %q) = %v", tc.p, tc.s, got)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"ForAllValues:StringLike":{"kms:EncryptionContextKeys":["a*"]}}}]}`)
	f.Add(`{"Statement":{"Effect":"Deny","NotPrincipal":{"AWS":["111122223333"]},"NotAction":"kms:Decrypt","NotResource":"x"}}`)
	f.Fuzz(func(t *testing.T, text string) {
		doc, err := Parse(text)
		if err != nil {
			return
		}
		r := doc.Evaluate(req(alice, "kms:Decrypt", map[string][]string{"kms:encryptioncontextkeys": {"a", "b"}, "aws:sourceip": {"192.0.2.1"}}))
		_ = decide(r)
	})
}

// values adapts a map of condition keys (lower-cased names) to
// Request.Context.
func values(m map[string][]string) func(string) []string {
	return func(k string) []string { return m[k] }
}
