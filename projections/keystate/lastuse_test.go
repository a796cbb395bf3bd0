package keystate

import (
	"crypto/sha256"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyledger/keyledger/ledger/event"
)

// TestLastUseAsFoldedAndRestored: GetKeyLastUsage's answer is the last
// use folded (in ledger order, whatever its time: equal, earlier, in
// another zone), its EventID the event's, through a snapshot and a
// restore taken at any point.
func TestLastUseAsFoldedAndRestored(t *testing.T) {
	ops := []string{"Encrypt", "Decrypt", "ReEncrypt", "Sign", "DescribeKey"}
	zone := time.FixedZone("east", 5*3600+1800)
	var recs []event.Record
	want := map[string]LastUse{}
	for i := range 40 {
		key := "k" + strconv.Itoa(i%3)
		at := t0.Add(time.Duration(i%7-3) * time.Hour) // equal and earlier times
		if i%4 == 0 {
			at = at.In(zone)
		}
		r := event.Record{Hash: sha256.Sum256([]byte{byte(i)}), Event: &event.Event{Index: uint64(i), Time: at, Operation: ops[i%len(ops)],
			Account: "111122223333", KeyID: key, Actor: &event.Actor{RequestID: "req-" + strconv.Itoa(i)}, Body: &event.APICall{}}}
		if i%5 == 3 {
			r.Event.Error = &event.Failure{Code: "AccessDeniedException"}
		}
		recs = append(recs, r)
		if cryptoOps[r.Event.Operation] && !r.Event.Refused() {
			want[key] = LastUse{Operation: r.Event.Operation, Time: at, EventID: r.Hash.EventID(), RequestID: "req-" + strconv.Itoa(i)}
		}
	}
	full := New()
	full.Apply(recs)
	for key, w := range want {
		if got, ok := full.LastUse(key); !ok || !cmp.Equal(got, w) {
			t.Errorf("%s: LastUse = %+v, %v; want %+v", key, got, ok, w)
		}
	}
	if diff := cmp.Diff(want, full.Snapshot().LastUse); diff != "" {
		t.Errorf("snapshot's LastUse (-want +got):\n%s", diff)
	}
	for cut := range len(recs) + 1 {
		part := New()
		part.Apply(recs[:cut])
		restored := Restore(part.Snapshot())
		restored.Apply(recs[cut:])
		if diff := cmp.Diff(full.Snapshot().LastUse, restored.Snapshot().LastUse); diff != "" {
			t.Fatalf("restored at %d, then folded (-fold +restored):\n%s", cut, diff)
		}
		for key := range want {
			a, _ := full.LastUse(key)
			b, _ := restored.LastUse(key)
			if a != b {
				t.Fatalf("restored at %d: %s: %+v, fold %+v", cut, key, b, a)
			}
		}
	}
}
