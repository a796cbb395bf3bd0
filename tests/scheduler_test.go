package tests

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"

	"github.com/keyledger/keyledger/ledger/event"
)

// kill stops an instance as a crash does: its NATS connection goes first,
// so it releases nothing (the scheduler lease stays until it expires).
func (i *instance) kill() {
	i.backend.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = i.node.Close(ctx)
	i.node, i.backend = nil, nil
}

// TestDueDeletionOnceAfterTakeover: two instances share a ledger; one runs
// the scheduler. A key's deletion is scheduled through the AWS SDK, the
// scheduler's instance dies, and the deletion falls due: the other
// instance takes the scheduler over (the lease lives 1 s here) and deletes
// the key. The ledger holds one DeleteKey for it, and the takeover.
func TestDueDeletionOnceAfterTakeover(t *testing.T) {
	port := freePort(t)
	startNATS(t, t.TempDir(), port)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	a := start(t, withNATS(url))
	b := start(t, withNATS(url))
	b.root = a.root // one deployment, one root key
	b.restart()
	for _, i := range []*instance{a, b} {
		i.kms = kms.New(i.kms.Options(), func(o *kms.Options) { o.RetryMaxAttempts = 5 })
	}
	ctx := context.Background()
	waitUntil(t, 10*time.Second, "an instance runs the scheduler", func() bool {
		return a.node.Scheduler.Holding() || b.node.Scheduler.Holding()
	})
	holder, other := a, b
	if b.node.Scheduler.Holding() {
		holder, other = b, a
	}
	key := other.createKey("deleted after a takeover")
	if _, err := other.kms.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &key, PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	head := other.node.Ledger.Head().Seq
	waitUntil(t, 10*time.Second, "the holder folds the schedule", func() bool { return holder.node.Ledger.Head().Seq >= head })
	holder.kill()
	killed := time.Now()
	other.clock.Advance(8 * 24 * time.Hour)
	waitUntil(t, 30*time.Second, "the other instance deletes the key", func() bool {
		_, err := other.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &key})
		var apiErr smithy.APIError
		return errors.As(err, &apiErr) && apiErr.ErrorCode() == "NotFoundException"
	})
	t.Logf("deleted %v after the scheduler's instance died", time.Since(killed).Round(time.Millisecond))
	if !other.node.Scheduler.Holding() {
		t.Error("the surviving instance does not hold the scheduler")
	}
	deletes, takeovers := 0, 0
	for _, r := range other.records() {
		switch r.Event.Body.(type) {
		case *event.KeyDeleted:
			if r.Event.KeyID == key {
				deletes++
			}
		case *event.SchedulerLeaseTaken:
			takeovers++
		}
	}
	if deletes != 1 || takeovers != 1 {
		t.Errorf("ledger: %d DeleteKey for the key, %d scheduler lease records; want 1 and 1 (the dead holder had no work)", deletes, takeovers)
	}
}
