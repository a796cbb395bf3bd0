package jsretry

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// TestDoRetriesAFormingCluster: "no suitable peers for placement" (a peer
// not yet seen online) is tried again; another API error is not.
func TestDoRetriesAFormingCluster(t *testing.T) {
	calls := 0
	got, err := Do(context.Background(), func(context.Context) (int, error) {
		calls++
		if calls < 3 {
			return 0, &jetstream.APIError{Code: 400, ErrorCode: errNoPeers, Description: "no suitable peers for placement, peer offline"}
		}
		return 7, nil
	})
	if err != nil || got != 7 || calls != 3 {
		t.Fatalf("got %d, %v after %d calls; want 7 after 3", got, err, calls)
	}
	calls = 0
	refused := &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamNameInUse}
	_, err = Do(context.Background(), func(context.Context) (int, error) { calls++; return 0, refused })
	if !errors.Is(err, refused) || calls != 1 {
		t.Fatalf("%v after %d calls; want the refusal after 1", err, calls)
	}
}
