package tests

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// TestValidation checks that bad input gets the error AWS gives, and that
// the service keeps serving afterwards.
func TestValidation(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	k := in.createKey("v")
	c := in.kms
	tests := []struct {
		name string
		call func() error
		code string
	}{
		{"plaintext too long", func() error {
			_, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: make([]byte, 4097)})
			return err
		}, "ValidationException"},
		{"ciphertext too long", func() error {
			_, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: make([]byte, 6145)})
			return err
		}, "ValidationException"},
		{"data key bytes 0", func() error {
			_, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: &k, NumberOfBytes: aws.Int32(0)})
			return err
		}, "ValidationException"},
		{"data key bytes 1025", func() error {
			_, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: &k, NumberOfBytes: aws.Int32(1025)})
			return err
		}, "ValidationException"},
		{"data key spec and bytes", func() error {
			_, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: &k, NumberOfBytes: aws.Int32(32), KeySpec: types.DataKeySpecAes256})
			return err
		}, "ValidationException"},
		{"data key neither", func() error {
			_, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: &k})
			return err
		}, "ValidationException"},
		{"random 0", func() error {
			_, err := c.GenerateRandom(ctx, &kms.GenerateRandomInput{NumberOfBytes: aws.Int32(0)})
			return err
		}, "ValidationException"},
		{"random 1025", func() error {
			_, err := c.GenerateRandom(ctx, &kms.GenerateRandomInput{NumberOfBytes: aws.Int32(1025)})
			return err
		}, "ValidationException"},
		{"random custom key store", func() error {
			_, err := c.GenerateRandom(ctx, &kms.GenerateRandomInput{NumberOfBytes: aws.Int32(8), CustomKeyStoreId: aws.String("cks-1")})
			return err
		}, "CustomKeyStoreNotFoundException"},
		{"deletion window 6", func() error {
			_, err := c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &k, PendingWindowInDays: aws.Int32(6)})
			return err
		}, "ValidationException"},
		{"deletion window 31", func() error {
			_, err := c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &k, PendingWindowInDays: aws.Int32(31)})
			return err
		}, "ValidationException"},
		{"unknown key spec", func() error {
			_, err := c.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: types.KeySpec("AES_999")})
			return err
		}, "ValidationException"},
		{"custom key store origin", func() error {
			_, err := c.CreateKey(ctx, &kms.CreateKeyInput{Origin: types.OriginTypeAwsCloudhsm})
			return err
		}, "UnsupportedOperationException"},
		{"usage not allowed for spec", func() error {
			_, err := c.CreateKey(ctx, &kms.CreateKeyInput{KeyUsage: types.KeyUsageTypeSignVerify})
			return err
		}, "ValidationException"},
		{"SM2 outside China", func() error {
			_, err := c.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: types.KeySpecSm2, KeyUsage: types.KeyUsageTypeSignVerify})
			return err
		}, "UnsupportedOperationException"},
		{"description too long", func() error {
			_, err := c.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String(strings.Repeat("d", 8193))})
			return err
		}, "ValidationException"},
		{"list limit 0", func() error {
			_, err := c.ListKeys(ctx, &kms.ListKeysInput{Limit: aws.Int32(0)})
			return err
		}, "ValidationException"},
		{"list limit 1001", func() error {
			_, err := c.ListAliases(ctx, &kms.ListAliasesInput{Limit: aws.Int32(1001)})
			return err
		}, "ValidationException"},
		{"key id missing", func() error {
			_, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("")})
			return err
		}, "ValidationException"},
		{"malformed key id", func() error {
			_, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("not-a-key")})
			return err
		}, "NotFoundException"},
		{"malformed arn", func() error {
			_, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("arn:aws:s3:::bucket")})
			return err
		}, "NotFoundException"},
		{"too many grant tokens", func() error {
			_, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x"), GrantTokens: make([]string, 11)})
			return err
		}, "ValidationException"},
		{"unknown encryption algorithm", func() error {
			_, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x"), EncryptionAlgorithm: "ROT13"})
			return err
		}, "ValidationException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantCode(t, tt.call(), tt.code)
		})
	}
	// Still serving.
	if _, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("ok")}); err != nil {
		t.Fatal(err)
	}
	// A 4096-byte plaintext is the largest allowed and round-trips.
	big := []byte(strings.Repeat("p", 4096))
	enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: big})
	if err != nil {
		t.Fatal(err)
	}
	dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	if err != nil || string(dec.Plaintext) != string(big) {
		t.Fatalf("4096-byte round trip: %v", err)
	}
}
