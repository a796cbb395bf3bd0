package tests

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

// Attacks on multi-Region keys (issue 20), from outside: what a caller of
// the AWS API, or a NATS client with keyledger's credentials, can do.

// TestMultiRegionPromotePendingDeletionReplica: AWS requires the replica
// that UpdatePrimaryRegion promotes to be Enabled. Here the primary cannot
// see its replica's state, so it hands the role to a replica scheduled for
// deletion; whatever the answer, no related key may end up a replica of a
// primary that no longer exists (an orphan no one can rotate, promote or
// replicate), and a primary with replicas must never be deleted outright.
func TestMultiRegionPromotePendingDeletionReplica(t *testing.T) {
	r := startRegions(t, []string{usEast, euWest}, withMultiRegion())
	ctx := context.Background()
	us, eu := r.client("admin", usEast), r.client("admin", euWest)
	id := r.clientKey(t, us, true)
	if _, err := us.ReplicateKey(ctx, &kms.ReplicateKeyInput{KeyId: &id, ReplicaRegion: aws.String(euWest)}); err != nil {
		t.Fatal(err)
	}
	waitKeyState(t, eu, id, "Enabled")
	waitUntil(t, 20*time.Second, "the primary sees the replica confirmed", func() bool {
		out, err := us.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		return err == nil && out.KeyMetadata.KeyState == types.KeyStateEnabled
	})
	if _, err := eu.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &id, PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	var updateErr error
	waitUntil(t, 20*time.Second, "UpdatePrimaryRegion answered (replica confirmed)", func() bool {
		_, updateErr = us.UpdatePrimaryRegion(ctx, &kms.UpdatePrimaryRegionInput{KeyId: &id, PrimaryRegion: aws.String(euWest)})
		return updateErr == nil || !isCode(updateErr, "KMSInvalidStateException") || !containsCreating(updateErr)
	})
	t.Logf("UpdatePrimaryRegion to a replica pending deletion: %v", updateErr)
	time.Sleep(500 * time.Millisecond) // the move, if made, reaches eu-west-1
	if out, err := eu.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id}); err == nil {
		t.Logf("eu-west-1 after the move: %s %s", out.KeyMetadata.KeyState, out.KeyMetadata.MultiRegionConfiguration.MultiRegionKeyType)
	}
	r.clock.Advance(8 * 24 * time.Hour)
	time.Sleep(2 * time.Second) // the scheduler and the replicators act
	a, err := us.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
	if err != nil {
		t.Fatalf("us-east-1's key, never scheduled for deletion, is gone: %v", err)
	}
	cfg := a.KeyMetadata.MultiRegionConfiguration
	if cfg.MultiRegionKeyType == types.MultiRegionKeyTypeReplica {
		if _, err := eu.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id}); err != nil {
			t.Fatalf("us-east-1 is a replica of %s, which was deleted (a primary deleted while it had a replica): %v",
				*cfg.PrimaryKey.Arn, err)
		}
		// The replica's deletion then starts the primary's window.
		if _, err := us.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &id, PendingWindowInDays: aws.Int32(7)}); err != nil {
			t.Fatal(err)
		}
		r.clock.Advance(8 * 24 * time.Hour)
		waitKeyState(t, eu, id, "PendingDeletion")
	}
}

func isCode(err error, code string) bool {
	return err != nil && strings.Contains(err.Error(), code)
}

func containsCreating(err error) bool { return strings.Contains(err.Error(), "is creating") }
