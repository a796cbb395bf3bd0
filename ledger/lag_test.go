package ledger_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/writer"
)

// foldTimes records when a ledger folded each event.
type foldTimes struct {
	mu sync.Mutex
	at map[event.Hash]time.Time
}

func (f *foldTimes) fold(recs []event.Record) {
	now := time.Now()
	f.mu.Lock()
	for _, r := range recs {
		f.at[r.Hash] = now
	}
	f.mu.Unlock()
}

func (f *foldTimes) when(h event.Hash) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.at[h]
	return t, ok
}

// BenchmarkFollowLag measures how far another instance trails the one
// that answered: for each event, the time from its writer folding it
// (right after JetStream acknowledged it) to a second instance on the same
// server folding it. b.N events, 8 appending at once; reported as the
// median and 99th percentile in microseconds. Run it with
// go test ./ledger -run - -bench FollowLag.
func BenchmarkFollowLag(b *testing.B) {
	srv := startServer(b, b.TempDir())
	wa, wb := writer.Generate(), writer.Generate()
	fa, fb := &foldTimes{at: map[event.Hash]time.Time{}}, &foldTimes{at: map[event.Hash]time.Time{}}
	a := openWriter(b, srv, wa, fa.fold)
	ctx := context.Background()
	if _, err := a.Append(ctx, &event.Event{Time: time.Now(), Operation: "RegisterWriter",
		Body: &event.WriterRegistered{WriterID: wa.ID(), PublicKey: wa.PublicText(), RegisteredBy: wa.ID()}}); err != nil {
		b.Fatal(err)
	}
	if _, err := a.Append(ctx, &event.Event{Time: time.Now(), Operation: "RegisterWriter",
		Body: &event.WriterRegistered{WriterID: wb.ID(), PublicKey: wb.PublicText(), RegisteredBy: wa.ID()}}); err != nil {
		b.Fatal(err)
	}
	other := openWriter(b, srv, wb, fb.fold)
	hashes := make(chan event.Hash, b.N)
	b.ResetTimer()
	var wg sync.WaitGroup
	per := (b.N + 7) / 8
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w * per; i < min((w+1)*per, b.N); i++ {
				var r event.Record
				var err error
				if i%16 == 0 {
					r, err = a.AppendChange(ctx, stateEvent("EnableKey", &event.KeyEnabled{}), a.Positions(), "key/lag")
				} else {
					r, err = a.Append(ctx, newEvent("Encrypt"))
				}
				if err != nil && err != ledger.ErrConflict {
					b.Error(err)
					return
				}
				if err == nil {
					hashes <- r.Hash
				}
			}
		}()
	}
	wg.Wait()
	close(hashes)
	if err := other.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	var lags []time.Duration
	for h := range hashes {
		ta, oka := fa.when(h)
		tb, okb := fb.when(h)
		if !oka || !okb {
			b.Fatalf("event %s folded by a: %v, by b: %v", h, oka, okb)
		}
		lags = append(lags, tb.Sub(ta))
	}
	slices.Sort(lags)
	if len(lags) == 0 {
		return
	}
	b.ReportMetric(float64(lags[len(lags)/2].Microseconds()), "lag-p50-µs")
	b.ReportMetric(float64(lags[len(lags)*99/100].Microseconds()), "lag-p99-µs")
	b.ReportMetric(float64(lags[len(lags)-1].Microseconds()), "lag-max-µs")
}
