package keystate

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyledger/keyledger/ledger/event"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func rec(i int, key string, body event.Body, fail *event.Failure) event.Record {
	return event.Record{Event: &event.Event{Index: uint64(i), Time: t0.Add(time.Duration(i) * time.Hour),
		Account: "111122223333", Region: "us-east-1", KeyID: key, Error: fail, Body: body}}
}

func TestFold(t *testing.T) {
	s := New()
	s.Apply([]event.Record{
		rec(0, "k1", &event.KeyCreated{KeySpec: "SYMMETRIC_DEFAULT", KeyUsage: "ENCRYPT_DECRYPT", Origin: "AWS_KMS",
			Tags: map[string]string{"a": "1"}, Material: event.MaterialRef{ID: "m1", WrappedHash: "h1"}}, nil),
		rec(1, "k1", &event.KeyDisabled{}, nil),
		rec(2, "k1", &event.KeyEnabled{}, &event.Failure{Code: "AccessDeniedException"}), // refused: no effect
		rec(3, "k1", &event.KeyTagged{Tags: map[string]string{"b": "2"}}, nil),
		rec(4, "k1", &event.KeyUntagged{TagKeys: []string{"a"}}, nil),
		rec(5, "k1", &event.AliasCreated{AliasName: "alias/x"}, nil),
		rec(6, "k1", &event.KeyDescriptionUpdated{Description: "d"}, nil),
	})
	before, _ := s.Key("k1")
	s.Apply([]event.Record{rec(7, "k1", &event.KeyDeletionScheduled{DeletionDate: t0.Add(7 * 24 * time.Hour), PendingWindowDays: 7}, nil)})
	k, ok := s.Key("k1")
	if !ok {
		t.Fatal("key missing")
	}
	want := Key{ID: "k1", Account: "111122223333", Region: "us-east-1", Created: t0, Description: "d",
		Spec: "SYMMETRIC_DEFAULT", Usage: "ENCRYPT_DECRYPT", Origin: "AWS_KMS", State: PendingDeletion,
		DeletionDate: t0.Add(7 * 24 * time.Hour), PendingWindowDays: 7, Tags: map[string]string{"b": "2"},
		Materials: []Material{{ID: "m1", WrappedHash: "h1", Created: t0}}}
	if diff := cmp.Diff(want, k); diff != "" {
		t.Fatalf("key (-want +got):\n%s", diff)
	}
	if before.State != Disabled {
		t.Fatalf("an earlier copy changed under its reader: %s", before.State)
	}
	if got := s.DueForDeletion(t0.Add(6 * 24 * time.Hour)); len(got) != 0 {
		t.Fatal("due too early")
	}
	if got := s.DueForDeletion(t0.Add(8 * 24 * time.Hour)); len(got) != 1 {
		t.Fatal("not due when it should be")
	}
	s.Apply([]event.Record{rec(8, "k1", &event.KeyDeleted{DestroyedMaterials: []string{"m1"}}, nil)})
	if _, ok := s.Key("k1"); ok {
		t.Fatal("deleted key still present")
	}
	if _, ok := s.Alias("111122223333", "alias/x"); ok {
		t.Fatal("alias of a deleted key still present")
	}
	if d := s.Deleted(); len(d) != 1 || d[0].Materials[0] != "m1" {
		t.Fatalf("deleted = %+v", d)
	}
}
