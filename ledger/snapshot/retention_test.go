package snapshot

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// hourly is a snapshot every hour for days days, newest first.
func hourly(days int) []Info {
	start := time.Date(2026, 1, 1, 0, 30, 0, 0, time.UTC)
	var out []Info
	for h := range days * 24 {
		idx := uint64(h+1) * 1000
		out = append([]Info{{Name: Name(idx), Pos: idx, EventTime: start.Add(time.Duration(h) * time.Hour)}}, out...)
	}
	return out
}

func names(list []Info) []string {
	var out []string
	for _, i := range list {
		out = append(out, i.EventTime.Format("2006-01-02T15"))
	}
	return out
}

func TestRetentionKeepsASparseBoundedSet(t *testing.T) {
	r := Retention{Recent: 2, Daily: 3, Weekly: 2, Monthly: 2}
	got := names(r.Keep(hourly(70))) // 2026-01-01 .. 2026-03-11
	want := []string{
		"2026-03-11T23", "2026-03-11T22", // the newest
		"2026-03-11T00", "2026-03-10T00", "2026-03-09T00", // first of the last three days (9 March is a Monday)
		"2026-03-02T00", // first of the week before (2 March, a Monday)
		"2026-03-01T00", // first of March (a Sunday: its week began in February)
		"2026-02-01T00", // first of February
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("kept (-want +got):\n%s", diff)
	}
	if n := len(r.Keep(hourly(400))); n > 2+3+2+2 {
		t.Fatalf("%d kept of 400 days, more than the bound", n)
	}
	r.Hourly = 4 // the first of each of the last four hours: the last four, hourly as they are
	if got := names(r.Keep(hourly(70))); len(got) != 8+2 || got[2] != "2026-03-11T21" || got[3] != "2026-03-11T20" {
		t.Fatalf("with hourly: %v", got)
	}
	if n := len(r.Keep(hourly(400))); n > 2+4+3+2+2 {
		t.Fatalf("%d kept of 400 days, more than the bound", n)
	}
}

// TestRetentionIsStable: thinning again, later, never wants back what it
// dropped: what a later Keep keeps of the whole history it also keeps of
// what an earlier Keep left.
func TestRetentionIsStable(t *testing.T) {
	r := Retention{Recent: 3, Hourly: 5, Daily: 7, Weekly: 4, Monthly: 6}
	all := hourly(200)
	for _, cut := range []int{24 * 150, 24 * 100, 24*50 + 7} {
		earlier := r.Keep(all[cut:]) // thinned when the history ended there
		later := append(append([]Info{}, all[:cut]...), earlier...)
		if diff := cmp.Diff(names(r.Keep(all)), names(r.Keep(later))); diff != "" {
			t.Fatalf("thinning at %d then again differs from once (-once +twice):\n%s", cut, diff)
		}
	}
}

func TestRetentionKeepsUnknownTimesOnlyAsNewest(t *testing.T) {
	list := []Info{{Name: "3", Pos: 3}, {Name: "2", Pos: 2}, {Name: "1", Pos: 1}}
	got := Retention{Recent: 1, Daily: 5}.Keep(list)
	if len(got) != 1 || got[0].Name != "3" {
		t.Fatalf("kept %v", got)
	}
}
