package keystate

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyledger/keyledger/ledger/event"
)

const mrk = "mrk-1234abcd12ab34cd56ef1234567890ab"

func regionRec(i int, region string, body event.Body) event.Record {
	r := rec(i, mrk, body, nil)
	r.Event.Region = region
	r.Hash[0], r.Hash[1] = byte(i), region[0]
	return r
}

func currentOf(t *testing.T, s *State) string {
	t.Helper()
	k, ok := s.Key(mrk)
	if !ok {
		t.Fatal("no key")
	}
	return k.CurrentMaterial().ID
}

// TestMultiRegionPrimaryFold: a rotated material stays pending on the
// primary until every replica confirmed its version; deleting a primary
// with replicas waits for them; handing the primary role over makes the
// key a replica, Updating until the new primary confirms.
func TestMultiRegionPrimaryFold(t *testing.T) {
	s := New()
	s.Apply([]event.Record{
		regionRec(0, "us-east-1", &event.KeyCreated{KeySpec: "SYMMETRIC_DEFAULT", KeyUsage: "ENCRYPT_DECRYPT", Origin: "AWS_KMS",
			MultiRegion: true, Material: event.MaterialRef{ID: "m1", WrappedHash: "h1"}}),
		regionRec(1, "us-east-1", &event.KeyReplicated{ReplicaRegion: "eu-west-1", Description: "eu"}),
	})
	k, _ := s.Key(mrk)
	if !k.IsPrimary() || k.SyncVersion != 2 || len(k.Replicas) != 1 || k.Replicas[0].Create == nil || k.Replicas[0].Create.Description != "eu" {
		t.Fatalf("after ReplicateKey: %+v", k)
	}
	s.Apply([]event.Record{regionRec(2, "us-east-1", &event.KeyRotated{Material: event.MaterialRef{ID: "m2", WrappedHash: "h2"}, RotationType: "ON_DEMAND"})})
	if got := currentOf(t, s); got != "m1" {
		t.Fatalf("current before the replica confirmed: %s", got)
	}
	s.Apply([]event.Record{regionRec(3, "us-east-1", &event.ReplicaAcknowledged{Region: "eu-west-1", Version: 2, SourceEventID: "x"})})
	if got := currentOf(t, s); got != "m1" {
		t.Fatalf("current after an older version was confirmed: %s", got)
	}
	s.Apply([]event.Record{regionRec(4, "us-east-1", &event.ReplicaAcknowledged{Region: "eu-west-1", Version: 3, SourceEventID: "y"})})
	if got := currentOf(t, s); got != "m2" {
		t.Fatalf("current after the replica confirmed: %s", got)
	}
	k, _ = s.Key(mrk)
	if k.Replicas[0].Create != nil || k.Replicas[0].Acked != 3 {
		t.Fatalf("replica after confirming: %+v", k.Replicas[0])
	}

	s.Apply([]event.Record{regionRec(5, "us-east-1", &event.KeyDeletionScheduled{DeletionDate: t0.Add(300 * time.Hour), PendingWindowDays: 9})})
	k, _ = s.Key(mrk)
	if k.State != PendingReplicaDeletion || !k.DeletionDate.IsZero() || k.PendingWindowDays != 9 {
		t.Fatalf("scheduled with a replica: %s %v %d", k.State, k.DeletionDate, k.PendingWindowDays)
	}
	if len(s.DueForDeletion(t0.Add(10000*time.Hour))) != 0 {
		t.Fatal("a primary with replicas fell due")
	}
	del := regionRec(6, "us-east-1", &event.ReplicaAcknowledged{Region: "eu-west-1", Version: 4, SourceEventID: "z", Deleted: true})
	s.Apply([]event.Record{del})
	k, _ = s.Key(mrk)
	if k.State != PendingDeletion || !k.DeletionDate.Equal(del.Event.Time.Add(9*24*time.Hour)) || len(k.Replicas) != 0 {
		t.Fatalf("after the last replica went: %s %v %v", k.State, k.DeletionDate, k.Replicas)
	}
	s.Apply([]event.Record{regionRec(7, "us-east-1", &event.KeyDeleted{DestroyedMaterials: []string{"m1", "m2"}})})
	if len(s.MultiRegionKeys()) != 0 {
		t.Fatal("deleted key still listed")
	}
}

// TestMultiRegionReplicaFold: a replica is created with the shared
// properties, uses the primary's current material, takes the primary role
// when it is handed over, and the key that handed it over is Updating
// until then.
func TestMultiRegionReplicaFold(t *testing.T) {
	eu := New()
	shared := event.MultiRegionShared{SourceRegion: "us-east-1", SourceEventID: "a", Version: 3, PrimaryRegion: "us-east-1",
		ReplicaRegions: []string{"eu-west-1"}, RotationPeriodDays: 90, NextRotation: t0.Add(90 * 24 * time.Hour),
		Materials: []event.SyncedMaterial{{Material: event.MaterialRef{ID: "m1", WrappedHash: "e1"}, Created: t0},
			{Material: event.MaterialRef{ID: "m2", WrappedHash: "e2"}, Created: t0.Add(time.Hour)}}, CurrentMaterial: "m1"}
	eu.Apply([]event.Record{regionRec(0, "eu-west-1", &event.ReplicaKeyCreated{MultiRegionShared: shared,
		KeySpec: "SYMMETRIC_DEFAULT", KeyUsage: "ENCRYPT_DECRYPT", Origin: "AWS_KMS", Description: "eu"})})
	k, _ := eu.Key(mrk)
	if !k.IsReplica() || k.State != Enabled || k.CurrentMaterial().ID != "m1" || len(k.Materials) != 2 || k.SyncVersion != 3 {
		t.Fatalf("replica: %+v", k)
	}
	if len(eu.DueForRotation(t0.Add(1000*24*time.Hour))) != 0 {
		t.Fatal("a replica fell due for rotation: only its primary rotates")
	}
	// The primary made m2 current: the sync says so.
	shared.Version, shared.CurrentMaterial, shared.Materials = 4, "m2", nil
	eu.Apply([]event.Record{regionRec(1, "eu-west-1", &event.MultiRegionKeySynchronized{MultiRegionShared: shared})})
	if got := currentOf(t, eu); got != "m2" {
		t.Fatalf("current after sync: %s", got)
	}

	// us-east-1 hands the primary role to eu-west-1.
	us := New()
	us.Apply([]event.Record{
		regionRec(0, "us-east-1", &event.KeyCreated{KeySpec: "SYMMETRIC_DEFAULT", KeyUsage: "ENCRYPT_DECRYPT", Origin: "AWS_KMS",
			MultiRegion: true, Material: event.MaterialRef{ID: "m1", WrappedHash: "h1"}}),
		regionRec(1, "us-east-1", &event.KeyReplicated{ReplicaRegion: "eu-west-1"}),
		regionRec(2, "us-east-1", &event.ReplicaAcknowledged{Region: "eu-west-1", Version: 2}),
		regionRec(3, "us-east-1", &event.PrimaryRegionUpdated{PrimaryRegion: "eu-west-1"}),
	})
	uk, _ := us.Key(mrk)
	if !uk.IsReplica() || !uk.Updating || uk.SyncVersion != 3 || cmp.Diff([]Replica{{Region: "us-east-1"}}, uk.Replicas) != "" {
		t.Fatalf("old primary: %+v", uk)
	}
	handover := event.MultiRegionShared{SourceRegion: "us-east-1", SourceEventID: "b", Version: 5, PrimaryRegion: "eu-west-1",
		ReplicaRegions: []string{"us-east-1"}, CurrentMaterial: "m2"}
	eu.Apply([]event.Record{regionRec(2, "eu-west-1", &event.MultiRegionKeySynchronized{MultiRegionShared: handover})})
	k, _ = eu.Key(mrk)
	if !k.IsPrimary() || cmp.Diff([]Replica{{Region: "us-east-1"}}, k.Replicas) != "" {
		t.Fatalf("new primary: %+v", k)
	}
	confirm := handover
	confirm.SourceRegion, confirm.SourceEventID = "eu-west-1", "c"
	us.Apply([]event.Record{regionRec(4, "us-east-1", &event.MultiRegionKeySynchronized{MultiRegionShared: confirm})})
	if uk, _ = us.Key(mrk); uk.Updating || uk.PrimaryRegion != "eu-west-1" {
		t.Fatalf("old primary after the new one confirmed: %+v", uk)
	}
	// Replay equals the restored snapshot.
	if diff := cmp.Diff(eu.Snapshot(), Restore(eu.Snapshot()).Snapshot()); diff != "" {
		t.Fatalf("snapshot round trip (-want +got):\n%s", diff)
	}
}
