package cloudtrail

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyledger/keyledger/ledger/event"
)

// A log file is one JSON object whose Records are the rendered events in
// order, whether it holds none, one or several.
func TestLogFile(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	var recs []event.Record
	for i, op := range []string{"Encrypt", "Decrypt", "GenerateDataKey"} {
		ev := &event.Event{Index: uint64(i), Time: t0.Add(time.Duration(i) * time.Second), Operation: op, Account: "111122223333",
			Region: "us-east-1", KeyID: "k1", Body: &event.APICall{}}
		raw := ev.AppendEncoded(nil)
		recs = append(recs, event.Record{Event: ev, Raw: raw, Hash: event.Of(raw)})
	}
	for n := 0; n <= len(recs); n++ {
		var buf bytes.Buffer
		var f LogFile
		if err := f.Begin(&buf); err != nil {
			t.Fatal(err)
		}
		for i, r := range recs[:n] {
			if err := f.Event(&buf, r, i); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.End(&buf); err != nil {
			t.Fatal(err)
		}
		var file struct{ Records []Record }
		if err := json.Unmarshal(buf.Bytes(), &file); err != nil {
			t.Fatalf("%d records: not JSON: %v\n%s", n, err, buf.Bytes())
		}
		want := []Record{}
		for _, r := range recs[:n] {
			want = append(want, Render(r))
		}
		if diff := cmp.Diff(want, append([]Record{}, file.Records...)); diff != "" {
			t.Fatalf("%d records (-want +got):\n%s", n, diff)
		}
	}
}
