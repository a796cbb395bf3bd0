package awsjson

import (
	"testing"
	"time"
)

// TestRequestDeadlines: requests that start within a grain share one
// context; each context ends no earlier than requestTimeout after its
// request started and no later than a grain beyond that.
func TestRequestDeadlines(t *testing.T) {
	var d requestDeadlines
	t0 := time.Now()
	a, b := d.context(t0), d.context(t0.Add(deadlineGrain/2))
	if a != b {
		t.Fatal("requests within one grain got different contexts")
	}
	c := d.context(t0.Add(deadlineGrain))
	if c == a {
		t.Fatal("a request a grain later shares the earlier context")
	}
	for _, tc := range []struct {
		start time.Time
		ctx   interface{ Deadline() (time.Time, bool) }
	}{{t0, a}, {t0.Add(deadlineGrain / 2), b}, {t0.Add(deadlineGrain), c}} {
		dl, ok := tc.ctx.Deadline()
		if !ok || dl.Before(tc.start.Add(requestTimeout)) || dl.After(tc.start.Add(requestTimeout+deadlineGrain)) {
			t.Fatalf("started %v: deadline %v (%v), want within [%v, %v]", tc.start, dl, ok, tc.start.Add(requestTimeout), tc.start.Add(requestTimeout+deadlineGrain))
		}
	}
	if a.Err() != nil {
		t.Fatal("a fresh request context has already ended")
	}
}
