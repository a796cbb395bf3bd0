package cloudtrail

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger/ledger/event"
)

func TestRender(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	actor := &event.Actor{AccessKeyID: "AKIAALICE00000001", PrincipalARN: "arn:aws:iam::111122223333:user/alice",
		SourceIP: "192.0.2.7", UserAgent: "aws-cli/2", RequestID: "req-1"}
	enc := &event.Event{Index: 7, Time: t0, Operation: "Encrypt", Account: "111122223333", Region: "us-east-1", KeyID: "k1",
		Actor: actor, Body: &event.APICall{MaterialID: "m1", EncryptionAlgorithm: "SYMMETRIC_DEFAULT", EncryptionContext: map[string]string{"app": "x"}}}
	r := event.Record{Event: enc, Raw: enc.AppendEncoded(nil)}
	r.Hash = event.Of(r.Raw)
	rec := Render(r)
	if rec.EventName != "Encrypt" || rec.EventSource != "kms.amazonaws.com" || rec.EventType != "AwsApiCall" || !rec.ReadOnly ||
		rec.UserIdentity.UserName != "alice" || rec.UserIdentity.AccountID != "111122223333" || rec.EventTime != "2026-11-27T12:00:00Z" ||
		rec.Resources[0].ARN != "arn:aws:kms:us-east-1:111122223333:key/k1" || rec.AdditionalEventData["keyMaterialId"] != "m1" ||
		rec.RequestParameters["encryptionAlgorithm"] != "SYMMETRIC_DEFAULT" || rec.EventID != r.Hash.EventID() || rec.Keyledger.Index != 7 {
		t.Fatalf("record: %+v", rec)
	}
	denied := &event.Event{Index: 8, Time: t0, Operation: "Decrypt", Account: "111122223333", Region: "us-east-1", KeyID: "k1", Actor: actor,
		Error: &event.Failure{Code: "AccessDeniedException", Message: "User: … is not authorized", Reason: "no key policy statement allows it"}, Body: &event.APICall{}}
	rd := Render(event.Record{Event: denied, Raw: denied.AppendEncoded(nil)})
	if rd.ErrorCode != "AccessDeniedException" || rd.Keyledger.Reason == "" {
		t.Fatalf("refusal record: %+v", rd)
	}
	del := &event.Event{Index: 9, Time: t0, Operation: "DeleteKey", Account: "111122223333", Region: "us-east-1", KeyID: "k1",
		Body: &event.KeyDeleted{DestroyedMaterials: []string{"m1"}}}
	rs := Render(event.Record{Event: del, Raw: del.AppendEncoded(nil)})
	if rs.EventType != "AwsServiceEvent" || rs.ServiceEventDetails["keyId"] != "k1" || rs.UserIdentity.Type != "AWSService" {
		t.Fatalf("service event: %+v", rs)
	}
	b, _ := json.Marshal(rec)
	for _, field := range []string{`"eventVersion":"1.11"`, `"recipientAccountId":"111122223333"`, `"managementEvent":true`, `"requestID":"req-1"`} {
		if !strings.Contains(string(b), field) {
			t.Fatalf("JSON lacks %s: %s", field, b)
		}
	}
}
