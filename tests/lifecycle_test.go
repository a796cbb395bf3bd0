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

// TestKeyLifecycle walks a key from creation to real deletion: create →
// encrypt → disable → enable → schedule deletion → the clock moves → gone,
// with its material destroyed.
func TestKeyLifecycle(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	c := in.kms

	created, err := c.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("lifecycle"),
		Tags: []types.Tag{{TagKey: aws.String("team"), TagValue: aws.String("payments")}}})
	if err != nil {
		t.Fatal(err)
	}
	md := created.KeyMetadata
	keyID := *md.KeyId
	wantArn := "arn:aws:kms:us-east-1:111122223333:key/" + keyID
	if *md.Arn != wantArn || md.KeyState != types.KeyStateEnabled || !md.Enabled ||
		md.KeySpec != types.KeySpecSymmetricDefault || md.KeyUsage != types.KeyUsageTypeEncryptDecrypt ||
		md.Origin != types.OriginTypeAwsKms || md.KeyManager != types.KeyManagerTypeCustomer ||
		*md.AWSAccountId != testAccount || *md.Description != "lifecycle" || md.CurrentKeyMaterialId == nil ||
		len(md.EncryptionAlgorithms) != 1 || md.EncryptionAlgorithms[0] != types.EncryptionAlgorithmSpecSymmetricDefault {
		t.Fatalf("unexpected metadata: %+v", md)
	}
	if !md.CreationDate.Equal(in.clock.Now()) {
		t.Fatalf("CreationDate %v, want the injected clock's %v", md.CreationDate, in.clock.Now())
	}

	enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: &keyID, Plaintext: []byte("hello")})
	if err != nil {
		t.Fatal(err)
	}
	if *enc.KeyId != wantArn || enc.EncryptionAlgorithm != types.EncryptionAlgorithmSpecSymmetricDefault {
		t.Fatalf("encrypt answered %+v", enc)
	}

	if _, err := c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: &keyID}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: &keyID, Plaintext: []byte("x")})
	wantCode(t, err, "DisabledException")
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	wantCode(t, err, "DisabledException")
	d, _ := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &keyID})
	if d.KeyMetadata.KeyState != types.KeyStateDisabled || d.KeyMetadata.Enabled {
		t.Fatalf("after DisableKey: %s", d.KeyMetadata.KeyState)
	}

	if _, err := c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: &wantArn}); err != nil {
		t.Fatal(err)
	}
	dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	if err != nil || string(dec.Plaintext) != "hello" || *dec.KeyId != wantArn || *dec.KeyMaterialId != *md.CurrentKeyMaterialId {
		t.Fatalf("decrypt after enable: %+v %v", dec, err)
	}

	sched, err := c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &keyID, PendingWindowInDays: aws.Int32(7)})
	if err != nil {
		t.Fatal(err)
	}
	due := in.clock.Now().Add(7 * 24 * time.Hour)
	if *sched.KeyId != wantArn || sched.KeyState != types.KeyStatePendingDeletion || *sched.PendingWindowInDays != 7 || !sched.DeletionDate.Equal(due) {
		t.Fatalf("schedule answered %+v", sched)
	}
	_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: &keyID, Plaintext: []byte("x")})
	wantCode(t, err, "KMSInvalidStateException")
	_, err = c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: &keyID})
	wantCode(t, err, "KMSInvalidStateException")
	_, err = c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &keyID})
	wantCode(t, err, "KMSInvalidStateException")

	// Cancel: the key comes back Disabled, as in AWS.
	if _, err := c.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: &keyID}); err != nil {
		t.Fatal(err)
	}
	d, _ = c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &keyID})
	if d.KeyMetadata.KeyState != types.KeyStateDisabled || d.KeyMetadata.DeletionDate != nil {
		t.Fatalf("after cancel: %+v", d.KeyMetadata)
	}
	_, err = c.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: &keyID})
	wantCode(t, err, "KMSInvalidStateException")

	if _, err := c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &keyID, PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	matID := *md.CurrentKeyMaterialId
	// One second before the date nothing happens.
	in.clock.Advance(7*24*time.Hour - time.Second)
	if err := in.node.Service.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &keyID}); err != nil {
		t.Fatalf("key deleted early: %v", err)
	}
	// Past the date the scheduler (running on its own) deletes the key.
	in.clock.Advance(2 * time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err = c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &keyID})
		if err != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	wantCode(t, err, "NotFoundException")
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	wantCode(t, err, "NotFoundException")
	list, _ := c.ListKeys(ctx, &kms.ListKeysInput{})
	for _, k := range list.Keys {
		if *k.KeyId == keyID {
			t.Fatal("deleted key still listed")
		}
	}
	// The material is gone from the material store, and the ledger says so.
	if in.materialStored(matID) {
		t.Fatal("material still exists after deletion")
	}
	var deleted *event.Event
	for _, r := range in.records() {
		if _, ok := r.Event.Body.(*event.KeyDeleted); ok && r.Event.KeyID == keyID {
			deleted = r.Event
		}
	}
	if deleted == nil || deleted.Operation != "DeleteKey" || deleted.Actor != nil ||
		len(deleted.Body.(*event.KeyDeleted).DestroyedMaterials) != 1 {
		t.Fatalf("no DeleteKey service event: %+v", deleted)
	}
}

func TestListKeysPagination(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	want := map[string]bool{}
	for i := 0; i < 5; i++ {
		want[in.createKey("k")] = true
	}
	got := map[string]bool{}
	var marker *string
	pages := 0
	for {
		out, err := in.kms.ListKeys(ctx, &kms.ListKeysInput{Limit: aws.Int32(2), Marker: marker})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, k := range out.Keys {
			if got[*k.KeyId] {
				t.Fatalf("key %s listed twice", *k.KeyId)
			}
			got[*k.KeyId] = true
			if *k.KeyArn != "arn:aws:kms:us-east-1:111122223333:key/"+*k.KeyId {
				t.Fatalf("bad arn %s", *k.KeyArn)
			}
		}
		if !out.Truncated {
			break
		}
		marker = out.NextMarker
	}
	if pages != 3 || len(got) != len(want) {
		t.Fatalf("%d pages, %d keys; want 3 pages, %d keys", pages, len(got), len(want))
	}
	// The SDK's paginator agrees.
	p := kms.NewListKeysPaginator(in.kms, &kms.ListKeysInput{Limit: aws.Int32(3)})
	n := 0
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += len(out.Keys)
	}
	if n != 5 {
		t.Fatalf("paginator saw %d keys", n)
	}
	_, err := in.kms.ListKeys(ctx, &kms.ListKeysInput{Marker: aws.String("!!not-a-marker!!")})
	wantCode(t, err, "InvalidMarkerException")
}

func TestUpdateKeyDescription(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	id := in.createKey("before")
	if _, err := in.kms.UpdateKeyDescription(ctx, &kms.UpdateKeyDescriptionInput{KeyId: &id, Description: aws.String("after")}); err != nil {
		t.Fatal(err)
	}
	d, _ := in.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
	if *d.KeyMetadata.Description != "after" {
		t.Fatalf("description %q", *d.KeyMetadata.Description)
	}
}
