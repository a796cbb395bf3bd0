package tests

import (
	"context"
	"encoding/base64"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// TestAWSEdges checks edges real clients met, each answered with AWS's
// code and AWS's message, word for word.
func TestAWSEdges(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	c := in.kms
	sym := in.createKey("edges")
	out, err := c.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: types.KeySpecRsa2048, KeyUsage: types.KeyUsageTypeSignVerify})
	if err != nil {
		t.Fatal(err)
	}
	rsa := *out.KeyMetadata.KeyId
	if _, err := c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/existing"), TargetKeyId: &sym}); err != nil {
		t.Fatal(err)
	}
	const signingSet = "[RSASSA_PSS_SHA_256, RSASSA_PSS_SHA_384, RSASSA_PSS_SHA_512, RSASSA_PKCS1_V1_5_SHA_256, " +
		"RSASSA_PKCS1_V1_5_SHA_384, RSASSA_PKCS1_V1_5_SHA_512, ECDSA_SHA_256, ECDSA_SHA_384, ECDSA_SHA_512, SM2DSA, " +
		"ML_DSA_SHAKE_256, ED25519_SHA_512, ED25519_PH_SHA_512]"
	tests := []struct {
		name, code, message string
		call                func() error
	}{
		{"Sign with an unknown signing algorithm", "ValidationException",
			"1 validation error detected: Value 'INVALID' at 'signingAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: " + signingSet,
			func() error {
				_, err := c.Sign(ctx, &kms.SignInput{KeyId: &rsa, Message: []byte("m"), SigningAlgorithm: "INVALID"})
				return err
			}},
		{"Verify with an unknown signing algorithm", "ValidationException",
			"1 validation error detected: Value 'INVALID' at 'signingAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: " + signingSet,
			func() error {
				_, err := c.Verify(ctx, &kms.VerifyInput{KeyId: &rsa, Message: []byte("m"), Signature: []byte("s"), SigningAlgorithm: "INVALID"})
				return err
			}},
		{"Sign with a known algorithm the key does not offer", "InvalidKeyUsageException", "",
			func() error {
				_, err := c.Sign(ctx, &kms.SignInput{KeyId: &rsa, Message: []byte("m"), SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256})
				return err
			}},
		{"Sign with an unknown message type", "ValidationException",
			"1 validation error detected: Value 'BOGUS' at 'messageType' failed to satisfy constraint: Member must satisfy enum value set: [RAW, DIGEST, EXTERNAL_MU]",
			func() error {
				_, err := c.Sign(ctx, &kms.SignInput{KeyId: &rsa, Message: []byte("m"), MessageType: "BOGUS", SigningAlgorithm: types.SigningAlgorithmSpecRsassaPssSha256})
				return err
			}},
		{"CreateAlias with a colon", "ValidationException", "alias/my:alias contains invalid characters for an alias",
			func() error {
				_, err := c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/my:alias"), TargetKeyId: &sym})
				return err
			}},
		{"CreateAlias outside the pattern", "ValidationException",
			"1 validation error detected: Value 'alias/my-alias!' at 'aliasName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$",
			func() error {
				_, err := c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/my-alias!"), TargetKeyId: &sym})
				return err
			}},
		{"CreateAlias with an alias as target", "ValidationException", "Aliases must refer to keys. Not aliases",
			func() error {
				_, err := c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/second"), TargetKeyId: aws.String("alias/existing")})
				return err
			}},
		{"CreateAlias with an alias ARN as target", "ValidationException", "Aliases must refer to keys. Not aliases",
			func() error {
				_, err := c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/second"),
					TargetKeyId: aws.String("arn:aws:kms:us-east-1:111122223333:alias/existing")})
				return err
			}},
		{"UpdateAlias with an alias as target", "ValidationException", "Aliases must refer to keys. Not aliases",
			func() error {
				_, err := c.UpdateAlias(ctx, &kms.UpdateAliasInput{AliasName: aws.String("alias/existing"), TargetKeyId: aws.String("alias/existing")})
				return err
			}},
		{"CreateAlias with the reserved prefix", "NotAuthorizedException", "",
			func() error {
				_, err := c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/aws/s3"), TargetKeyId: &sym})
				return err
			}},
		{"CreateAlias too long", "ValidationException",
			"1 validation error detected: Value 'alias/" + strings.Repeat("a", 251) + "' at 'aliasName' failed to satisfy constraint: Member must have length less than or equal to 256",
			func() error {
				_, err := c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/" + strings.Repeat("a", 251)), TargetKeyId: &sym})
				return err
			}},
		{"DescribeKey by a malformed key id", "NotFoundException", "Invalid keyId 'not-a-key'",
			func() error {
				_, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("not-a-key")})
				return err
			}},
		{"tag value too long", "ValidationException",
			"1 validation error detected: Value '" + strings.Repeat("v", 257) + "' at 'tags.member.tagValue' failed to satisfy constraint: Member must have length less than or equal to 256",
			func() error {
				_, err := c.TagResource(ctx, &kms.TagResourceInput{KeyId: &sym, Tags: []types.Tag{{TagKey: aws.String("k"), TagValue: aws.String(strings.Repeat("v", 257))}}})
				return err
			}},
		{"data key spec not in the enum", "ValidationException",
			"1 validation error detected: Value 'AES_512' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]",
			func() error {
				_, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: &sym, KeySpec: "AES_512"})
				return err
			}},
		{"deletion window out of range", "ValidationException",
			"1 validation error detected: Value '3' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value greater than or equal to 7",
			func() error {
				_, err := c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &sym, PendingWindowInDays: aws.Int32(3)})
				return err
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg := wantCode(t, tc.call(), tc.code)
			if tc.message != "" && msg != tc.message {
				t.Errorf("message\n got: %s\nwant: %s", msg, tc.message)
			}
		})
	}
}

// goEnum matches an enum list printed the Go way: "[RAW DIGEST]".
var goEnum = regexp.MustCompile(`\[[A-Z0-9_]+ [A-Z0-9_]+`)

// TestValidationMessagesShape sweeps bad values through every enum member
// keyledger checks: each message quotes the offending value and lists the
// allowed values AWS's way.
func TestValidationMessagesShape(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	c := in.kms
	sym := in.createKey("shape")
	out, err := c.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: types.KeySpecHmac256, KeyUsage: types.KeyUsageTypeGenerateVerifyMac})
	if err != nil {
		t.Fatal(err)
	}
	mac := *out.KeyMetadata.KeyId
	calls := map[string]func() error{
		"keySpec": func() error {
			_, err := c.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: "BAD_VALUE"})
			return err
		},
		"keyUsage": func() error {
			_, err := c.CreateKey(ctx, &kms.CreateKeyInput{KeyUsage: "BAD_VALUE"})
			return err
		},
		"origin": func() error {
			_, err := c.CreateKey(ctx, &kms.CreateKeyInput{Origin: "BAD_VALUE"})
			return err
		},
		"encryptionAlgorithm": func() error {
			_, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: &sym, Plaintext: []byte("x"), EncryptionAlgorithm: "BAD_VALUE"})
			return err
		},
		"macAlgorithm": func() error {
			_, err := c.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: &mac, Message: []byte("m"), MacAlgorithm: "BAD_VALUE"})
			return err
		},
		"keyPairSpec": func() error {
			_, err := c.GenerateDataKeyPair(ctx, &kms.GenerateDataKeyPairInput{KeyId: &sym, KeyPairSpec: "BAD_VALUE"})
			return err
		},
		"wrappingAlgorithm": func() error {
			_, err := c.GetParametersForImport(ctx, &kms.GetParametersForImportInput{KeyId: &sym, WrappingAlgorithm: "BAD_VALUE", WrappingKeySpec: types.WrappingKeySpecRsa2048})
			return err
		},
		"operations": func() error {
			_, err := c.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: &sym, GranteePrincipal: aws.String("arn:aws:iam::111122223333:user/alice"),
				Operations: []types.GrantOperation{"BAD_VALUE"}})
			return err
		},
		"includeKeyMaterial": func() error {
			_, err := c.ListKeyRotations(ctx, &kms.ListKeyRotationsInput{KeyId: &sym, IncludeKeyMaterial: "BAD_VALUE"})
			return err
		},
	}
	for member, call := range calls {
		t.Run(member, func(t *testing.T) {
			msg := wantCode(t, call(), "ValidationException")
			if !strings.HasPrefix(msg, "1 validation error detected: Value 'BAD_VALUE' at '"+member+"' failed to satisfy constraint: Member must satisfy enum value set: [") {
				t.Errorf("message: %s", msg)
			}
			if goEnum.MatchString(msg) {
				t.Errorf("Go-style enum list: %s", msg)
			}
		})
	}
}

// TestValidationNeverEchoesSecrets sends secrets that break a constraint
// and checks that neither the answer nor the ledger holds them.
func TestValidationNeverEchoesSecrets(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	c := in.kms
	k := in.createKey("secrets")
	marker := "SECRETMARKER"
	plaintext := []byte(strings.Repeat(marker, 4097/len(marker)+1))
	_, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: plaintext})
	msgs := []string{wantCode(t, err, "ValidationException")}
	if want := "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length less than or equal to 4096"; msgs[0] != want {
		t.Errorf("message\n got: %s\nwant: %s", msgs[0], want)
	}
	_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x"), GrantTokens: []string{strings.Repeat(marker, 8193/len(marker)+1)}})
	msgs = append(msgs, wantCode(t, err, "ValidationException"))
	_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x"), GrantTokens: []string{"kl1." + marker}})
	msgs = append(msgs, wantCode(t, err, "InvalidGrantTokenException"))
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: []byte(strings.Repeat(marker, 10))})
	msgs = append(msgs, wantCode(t, err, "InvalidCiphertextException"))
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: []byte(strings.Repeat(marker, 6145/len(marker)+1))})
	msgs = append(msgs, wantCode(t, err, "ValidationException"))

	b64 := base64.StdEncoding.EncodeToString([]byte(marker + marker + marker))[:12]
	for _, m := range msgs {
		if strings.Contains(m, marker) || strings.Contains(m, b64) {
			t.Errorf("an answer echoes the secret: %s", m)
		}
	}
	for _, r := range in.records() {
		if strings.Contains(string(r.Raw), marker) || strings.Contains(string(r.Raw), b64) {
			t.Errorf("the ledger holds the secret: %s", r.Raw)
		}
	}
}
