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

// TestFoldEachEvent folds one event of each type onto a new key and
// compares the key with what that event should make of it.
func TestFoldEachEvent(t *testing.T) {
	t1 := t0.Add(time.Hour) // rec(1, …)'s time
	m2 := event.MaterialRef{ID: "m2", WrappedHash: "h2"}
	tests := []struct {
		name string
		body event.Body
		want func(k *Key)
	}{
		{"KeyDisabled", &event.KeyDisabled{}, func(k *Key) { k.State = Disabled }},
		{"KeyEnabled", &event.KeyEnabled{}, func(k *Key) {}},
		{"KeyDescriptionUpdated", &event.KeyDescriptionUpdated{Description: "d"}, func(k *Key) { k.Description = "d" }},
		{"KeyDeletionScheduled", &event.KeyDeletionScheduled{DeletionDate: t1.Add(days(7)), PendingWindowDays: 7}, func(k *Key) {
			k.State, k.DeletionDate, k.PendingWindowDays = PendingDeletion, t1.Add(days(7)), 7
		}},
		{"KeyRotationEnabled", &event.KeyRotationEnabled{RotationPeriodDays: 90}, func(k *Key) {
			k.RotationPeriodDays, k.NextRotation = 90, t1.Add(days(90))
		}},
		{"KeyRotationDisabled", &event.KeyRotationDisabled{}, func(k *Key) {}},
		{"KeyRotated on demand", &event.KeyRotated{Material: m2, RotationType: "ON_DEMAND"}, func(k *Key) {
			k.Materials = append(k.Materials, Material{ID: "m2", WrappedHash: "h2", Created: t1, RotationType: "ON_DEMAND"})
			k.OnDemandRotations = 1
		}},
		{"ImportParametersIssued", &event.ImportParametersIssued{TokenID: "t", WrappingAlgorithm: "RSAES_OAEP_SHA_256",
			WrappingKeySpec: "RSA_2048", ValidTo: t1.Add(days(1)), WrappingKey: m2}, func(k *Key) {
			k.ImportTokens = map[string]ImportToken{"t": {ID: "t", WrappingAlgorithm: "RSAES_OAEP_SHA_256",
				WrappingKeySpec: "RSA_2048", ValidTo: t1.Add(days(1)), WrappingKey: m2}}
		}},
		{"KeyPolicyPut", &event.KeyPolicyPut{Policy: "{}"}, func(k *Key) { k.Policy = "{}" }},
		{"GrantCreated", &event.GrantCreated{GrantID: "g", GranteePrincipal: "arn:aws:iam::111122223333:user/bob",
			Operations: []string{"Encrypt"}, TokenHash: "th"}, func(k *Key) {
			k.Grants = map[string]Grant{"g": {ID: "g", KeyID: "k1", IssuingAccount: "111122223333",
				GranteePrincipal: "arn:aws:iam::111122223333:user/bob", Operations: []string{"Encrypt"}, TokenHash: "th", Created: t1}}
		}},
		{"KeyMaterialDeleted", &event.KeyMaterialDeleted{MaterialID: "m1"}, func(k *Key) {
			k.Materials, k.State = []Material{}, PendingImport
		}},
		{"KeyMaterialImported again", &event.KeyMaterialImported{Material: event.MaterialRef{ID: "m1", WrappedHash: "h1"},
			ExpirationModel: "KEY_MATERIAL_DOES_NOT_EXPIRE"}, func(k *Key) {
			k.Materials = []Material{{ID: "m1", WrappedHash: "h1", Created: t0, Imported: true, ExpirationModel: "KEY_MATERIAL_DOES_NOT_EXPIRE"}}
		}},
		{"KeyTagged", &event.KeyTagged{Tags: map[string]string{"b": "2"}}, func(k *Key) { k.Tags = map[string]string{"a": "1", "b": "2"} }},
		{"KeyUntagged", &event.KeyUntagged{TagKeys: []string{"a"}}, func(k *Key) { k.Tags = map[string]string{} }},
		{"refused", &event.KeyDisabled{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			var fail *event.Failure
			if tt.want == nil {
				fail, tt.want = &event.Failure{Code: "AccessDeniedException"}, func(*Key) {}
			}
			s.Apply([]event.Record{
				rec(0, "k1", &event.KeyCreated{KeySpec: "SYMMETRIC_DEFAULT", KeyUsage: "ENCRYPT_DECRYPT", Origin: "AWS_KMS",
					Tags: map[string]string{"a": "1"}, Material: event.MaterialRef{ID: "m1", WrappedHash: "h1"}}, nil),
				rec(1, "k1", tt.body, fail),
			})
			want := Key{ID: "k1", Account: "111122223333", Region: "us-east-1", Created: t0, Spec: "SYMMETRIC_DEFAULT",
				Usage: "ENCRYPT_DECRYPT", Origin: "AWS_KMS", State: Enabled, Tags: map[string]string{"a": "1"},
				Materials: []Material{{ID: "m1", WrappedHash: "h1", Created: t0}}}
			tt.want(&want)
			got, _ := s.Key("k1")
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("key (-want +got):\n%s", diff)
			}
		})
	}
}
