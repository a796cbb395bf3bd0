package tests

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/keyledger/keyledger/ledger/event"
)

// TestRotation covers automatic rotation on the injected clock, on-demand
// rotation and its limit, listing, and old ciphertext across rotations and a
// restart.
func TestRotation(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	id := in.createKey("rotating")
	first, _ := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &id, Plaintext: []byte("before rotation")})

	st, err := in.kms.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: &id})
	if err != nil || st.KeyRotationEnabled {
		t.Fatalf("new key rotation status: %+v %v", st, err)
	}
	_, err = in.kms.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: &id, RotationPeriodInDays: aws.Int32(89)})
	wantCode(t, err, "ValidationException")
	_, err = in.kms.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: &id, RotationPeriodInDays: aws.Int32(2561)})
	wantCode(t, err, "ValidationException")
	if _, err := in.kms.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: &id, RotationPeriodInDays: aws.Int32(90)}); err != nil {
		t.Fatal(err)
	}
	st, _ = in.kms.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: &id})
	due := in.clock.Now().Add(90 * 24 * time.Hour)
	if !st.KeyRotationEnabled || *st.RotationPeriodInDays != 90 || !st.NextRotationDate.Equal(due) {
		t.Fatalf("status after enable: %+v", st)
	}

	// The clock reaches the rotation date: the scheduler rotates.
	in.clock.Advance(90*24*time.Hour + time.Second)
	if err := in.node.Service.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	d, _ := in.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
	if *d.KeyMetadata.CurrentKeyMaterialId == materialOf(t, in, first.CiphertextBlob) {
		t.Fatal("automatic rotation did not change the current material")
	}
	second, _ := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &id, Plaintext: []byte("after rotation")})
	if materialOf(t, in, second.CiphertextBlob) == materialOf(t, in, first.CiphertextBlob) {
		t.Fatal("new encryptions still use the old material")
	}
	var rotateEvents int
	for _, r := range in.records() {
		if b, ok := r.Event.Body.(*event.KeyRotated); ok && r.Event.Operation == "RotateKey" && b.RotationType == "AUTOMATIC" && r.Event.Actor == nil {
			rotateEvents++
		}
	}
	if rotateEvents != 1 {
		t.Fatalf("%d RotateKey service events, want 1", rotateEvents)
	}
	st, _ = in.kms.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: &id})
	if !st.NextRotationDate.Equal(in.clock.Now().Add(90 * 24 * time.Hour)) {
		t.Fatalf("next rotation not rescheduled: %v", st.NextRotationDate)
	}

	// On demand, 25 times at most.
	for i := 0; i < 25; i++ {
		if _, err := in.kms.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: &id}); err != nil {
			t.Fatalf("on-demand rotation %d: %v", i+1, err)
		}
	}
	_, err = in.kms.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: &id})
	wantCode(t, err, "LimitExceededException")

	// Listing, paginated.
	var rotations []types.RotationsListEntry
	p := kms.NewListKeyRotationsPaginator(in.kms, &kms.ListKeyRotationsInput{KeyId: &id, Limit: aws.Int32(7)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rotations = append(rotations, out.Rotations...)
	}
	if len(rotations) != 26 || rotations[0].RotationType != types.RotationTypeAutomatic || rotations[1].RotationType != types.RotationTypeOnDemand ||
		rotations[25].KeyMaterialState != types.KeyMaterialStateCurrent || rotations[0].KeyMaterialState != types.KeyMaterialStateNonCurrent {
		t.Fatalf("%d rotations listed: first %+v, last %+v", len(rotations), rotations[0], rotations[len(rotations)-1])
	}
	all, _ := in.kms.ListKeyRotations(ctx, &kms.ListKeyRotationsInput{KeyId: &id, IncludeKeyMaterial: types.IncludeKeyMaterialAllKeyMaterial, Limit: aws.Int32(100)})
	if len(all.Rotations) != 27 {
		t.Fatalf("ALL_KEY_MATERIAL lists %d", len(all.Rotations))
	}

	// Every material still decrypts what it made, also after a restart.
	in.restart()
	for _, blob := range [][]byte{first.CiphertextBlob, second.CiphertextBlob} {
		if _, err := in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob}); err != nil {
			t.Fatalf("old ciphertext after rotations and restart: %v", err)
		}
	}
	if _, err := in.kms.DisableKeyRotation(ctx, &kms.DisableKeyRotationInput{KeyId: &id}); err != nil {
		t.Fatal(err)
	}
	in.clock.Advance(400 * 24 * time.Hour)
	before, err := in.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
	if err != nil {
		t.Fatal(err)
	}
	if err := in.node.Service.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	after, err := in.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
	if err != nil {
		t.Fatal(err)
	}
	if *before.KeyMetadata.CurrentKeyMaterialId != *after.KeyMetadata.CurrentKeyMaterialId {
		t.Fatal("a key with rotation disabled rotated")
	}

	// Asymmetric keys do not rotate.
	asym, _ := in.kms.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: types.KeySpecEccNistP256, KeyUsage: types.KeyUsageTypeSignVerify})
	_, err = in.kms.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: asym.KeyMetadata.KeyId})
	wantCode(t, err, "UnsupportedOperationException")
	st, err = in.kms.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: asym.KeyMetadata.KeyId})
	if err != nil || st.KeyRotationEnabled {
		t.Fatalf("asymmetric rotation status: %v", err)
	}
}

// materialOf reads the material id from a keyledger ciphertext header via
// a Decrypt answer.
func materialOf(t *testing.T, in *instance, blob []byte) string {
	t.Helper()
	out, err := in.kms.Decrypt(context.Background(), &kms.DecryptInput{CiphertextBlob: blob})
	if err != nil {
		t.Fatal(err)
	}
	return *out.KeyMaterialId
}

func TestUsageCountersAndLastUsage(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	id := in.createKey("usage")
	lu, err := in.kms.GetKeyLastUsage(ctx, &kms.GetKeyLastUsageInput{KeyId: &id})
	if err != nil || lu.KeyLastUsage != nil || !lu.KeyCreationDate.Equal(in.clock.Now()) {
		t.Fatalf("unused key: %+v %v", lu, err)
	}
	var blob []byte
	for i := 0; i < 3; i++ {
		out, _ := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &id, Plaintext: []byte("x")})
		blob = out.CiphertextBlob
	}
	in.kms.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: &id, KeySpec: types.DataKeySpecAes256})
	in.clock.Advance(time.Hour)
	dec, _ := in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob})
	if n := in.node.State.Encryptions(*dec.KeyMaterialId); n != 4 {
		t.Fatalf("material encryptions = %d, want 4", n)
	}
	lu, err = in.kms.GetKeyLastUsage(ctx, &kms.GetKeyLastUsageInput{KeyId: &id})
	if err != nil || lu.KeyLastUsage == nil || string(lu.KeyLastUsage.Operation) != "Decrypt" || !lu.KeyLastUsage.Timestamp.Equal(in.clock.Now()) ||
		*lu.KeyLastUsage.KmsRequestId == "" || len(*lu.KeyLastUsage.CloudTrailEventId) != 36 {
		t.Fatalf("last usage: %+v %v", lu.KeyLastUsage, err)
	}
	// Refused uses are not usage.
	in.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: &id})
	in.clock.Advance(time.Hour)
	in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &id, Plaintext: []byte("x")})
	lu2, _ := in.kms.GetKeyLastUsage(ctx, &kms.GetKeyLastUsageInput{KeyId: &id})
	if !lu2.KeyLastUsage.Timestamp.Equal(*lu.KeyLastUsage.Timestamp) {
		t.Fatal("a refused Encrypt counted as usage")
	}

}
