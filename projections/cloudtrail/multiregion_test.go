package cloudtrail

import (
	"testing"
	"time"

	"github.com/keyledger/keyledger/ledger/event"
)

// A replica's CreateKey names the primary's ReplicateKey; the primary's
// record of the confirmation names the replica's event.
func TestMultiRegionCrossReference(t *testing.T) {
	rec := func(region, op string, body event.Body) Record {
		return Render(event.Record{Event: &event.Event{Time: time.Unix(0, 0), Operation: op, Account: "111122223333",
			Region: region, KeyID: "mrk-1234abcd12ab34cd56ef1234567890ab", Body: body}})
	}
	created := rec("eu-west-1", "CreateKey", &event.ReplicaKeyCreated{MultiRegionShared: event.MultiRegionShared{
		SourceRegion: "us-east-1", SourceEventID: "replicate-id", PrimaryRegion: "us-east-1"}, KeySpec: "SYMMETRIC_DEFAULT"})
	if created.AdditionalEventData["sourceEventId"] != "replicate-id" || created.RequestParameters["multiRegion"] != true ||
		created.EventType != "AwsServiceEvent" {
		t.Fatalf("replica's CreateKey: %+v", created)
	}
	acked := rec("us-east-1", "SynchronizeMultiRegionKey", &event.ReplicaAcknowledged{Region: "eu-west-1", Version: 2, SourceEventID: "create-id"})
	if acked.AdditionalEventData["sourceEventId"] != "create-id" || acked.AdditionalEventData["replicaRegion"] != "eu-west-1" {
		t.Fatalf("primary's acknowledgement: %+v", acked)
	}
	if r := rec("us-east-1", "ReplicateKey", &event.KeyReplicated{ReplicaRegion: "eu-west-1"}); r.RequestParameters["replicaRegion"] != "eu-west-1" {
		t.Fatalf("ReplicateKey: %+v", r)
	}
}
