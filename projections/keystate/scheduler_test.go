package keystate

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyledger/keyledger/ledger/event"
)

// TestSchedulerLeaseFold: the newest SchedulerLeaseTaken is the scheduler
// lease, by its event's hash; a refused one changes nothing; a snapshot
// carries it.
func TestSchedulerLeaseFold(t *testing.T) {
	s := New()
	if got := s.Scheduler(); got != (SchedulerLease{}) {
		t.Fatalf("empty state's lease = %+v", got)
	}
	hashed := func(r event.Record) event.Record { r.Hash = event.Of(r.Event.AppendEncoded(nil)); return r }
	first := hashed(rec(0, "", &event.SchedulerLeaseTaken{Holder: "a", Token: 3}, nil))
	second := hashed(rec(1, "", &event.SchedulerLeaseTaken{Holder: "b", Token: 9, Supersedes: first.Hash.String()}, nil))
	refused := hashed(rec(2, "", &event.SchedulerLeaseTaken{Holder: "c", Token: 10}, &event.Failure{Code: "KMSInternalException"}))
	if first.Hash == second.Hash {
		t.Fatal("test records share a hash")
	}
	s.Apply([]event.Record{first, second, refused})
	want := SchedulerLease{Holder: "b", Token: 9, Event: second.Hash.String()}
	if diff := cmp.Diff(want, s.Scheduler()); diff != "" {
		t.Errorf("lease (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, Restore(s.Snapshot()).Scheduler()); diff != "" {
		t.Errorf("lease after snapshot and restore (-want +got):\n%s", diff)
	}
}

// TestRootVersionsFold: the newest RootRotationStarted names the current
// root version, RootVersionRetired the retired ones; a snapshot carries
// them.
func TestRootVersionsFold(t *testing.T) {
	s := New()
	s.Apply([]event.Record{
		rec(0, "", &event.RootRotationStarted{FromVersion: 1, ToVersion: 2}, nil),
		rec(1, "", &event.RootVersionRetired{Version: 1}, nil),
		rec(2, "", &event.RootRotationStarted{FromVersion: 2, ToVersion: 3}, nil),
		rec(3, "", &event.RootRotationStarted{FromVersion: 3, ToVersion: 4}, &event.Failure{Code: "AccessDeniedException"}),
	})
	want := RootVersions{Current: 3, Retired: []uint64{1}}
	if diff := cmp.Diff(want, s.Root()); diff != "" {
		t.Errorf("root versions (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, Restore(s.Snapshot()).Root()); diff != "" {
		t.Errorf("after snapshot and restore (-want +got):\n%s", diff)
	}
}
