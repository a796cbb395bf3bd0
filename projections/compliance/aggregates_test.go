package compliance

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyledger/keyledger/ledger/event"
)

// TestAggregatesDaysAsFormatted: the day an event counts for is its UTC
// date, as formatting its time names it, for events in any order, in any
// zone, at and around midnight; and a restore, then the rest of the fold,
// gives what the whole fold gives.
func TestAggregatesDaysAsFormatted(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	zones := []*time.Location{time.UTC, time.FixedZone("west", -(9*3600 + 1800)), time.FixedZone("east", 14*3600)}
	midnight := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var recs []event.Record
	usage, denied := map[string]int{}, map[string]int{}
	for i := range 2000 {
		var at time.Time
		switch i % 4 {
		case 0: // at midnight, a nanosecond either side
			at = midnight.Add(time.Duration(rng.IntN(5)-2) * 24 * time.Hour).Add(time.Duration(rng.IntN(3)-1) * time.Nanosecond)
		case 1: // out of order over years, some before year 1 and after 9999
			at = time.Unix(rng.Int64N(1<<40)-1<<39, rng.Int64N(1e9))
		default: // mostly in order, some equal
			at = midnight.Add(time.Duration(i/3) * 7 * time.Minute)
		}
		at = at.In(zones[rng.IntN(len(zones))])
		day := at.UTC().Format("2006-01-02")
		r := rec(i, accountA, "key-a", "Encrypt", &event.APICall{}, nil)
		r.Event.Time = at
		if i%3 == 0 {
			r.Event.Error = &event.Failure{Code: "AccessDeniedException"}
			denied[day]++
		} else {
			usage[day]++
		}
		recs = append(recs, r)
	}
	full := NewAggregates()
	full.Apply(recs)
	got := full.Snapshot()
	if diff := cmp.Diff(usage, got.Usage["key-a"]); diff != "" {
		t.Errorf("usage per day (-formatted +aggregated):\n%s", diff)
	}
	if diff := cmp.Diff(denied, got.Denied[accountA]); diff != "" {
		t.Errorf("denials per day (-formatted +aggregated):\n%s", diff)
	}
	for _, cut := range []int{0, 1, 777, 1999, 2000} {
		part := NewAggregates()
		part.Apply(recs[:cut])
		restored := RestoreAggregates(part.Snapshot())
		restored.Apply(recs[cut:])
		if diff := cmp.Diff(got, restored.Snapshot()); diff != "" {
			t.Fatalf("restored at %d, then folded (-fold +restored):\n%s", cut, diff)
		}
	}
}
