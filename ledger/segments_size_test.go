package ledger_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
)

// Rolling by size while the follower looks at the stream's end all the
// time: no segment is sealed short of the bound (a look that raced a roll
// must not give the new segment the old one's count).
func TestRollBySizeWhileFollowing(t *testing.T) {
	srv := startServer(t, t.TempDir())
	cfg := ledger.Config{SegmentBytes: 2 << 10, FollowInterval: 200 * time.Microsecond}
	l, h := openWith(t, srv, cfg)
	l.Start(h)
	ctx := context.Background()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // another reader of the stream's end, as a change's catch-up
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = l.Sync(ctx)
		}
	}()
	for range 300 {
		if _, err := l.Append(ctx, newEvent("Encrypt")); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	<-done
	segs, err := l.Segments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	short := 0
	for _, s := range segs[:len(segs)-1] {
		if s.Bytes < cfg.SegmentBytes {
			short++
			t.Errorf("segment %s sealed at %d bytes (%d messages), short of %d", s.Stream, s.Bytes, s.Last-s.First+1, cfg.SegmentBytes)
		}
	}
	t.Logf("%d segments, %d short", len(segs), short)
}

// Two instances appending at once, each rolling by size as its own looks
// at the stream's end say: no acknowledged event is lost, the chain reads
// whole, and no segment was sealed short of the bound.
func TestRollBySizeUnderContention(t *testing.T) {
	srv := startServer(t, t.TempDir())
	cfg := ledger.Config{SegmentBytes: 3 << 10, FollowInterval: time.Millisecond}
	a, ha := openWith(t, srv, cfg)
	b, hb := openWith(t, srv, cfg)
	a.Start(ha)
	b.Start(hb)
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[event.Hash]bool{}
	for _, l := range []*ledger.Ledger{a, b} {
		for range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 40 {
					r, err := l.Append(context.Background(), newEvent("Encrypt"))
					if errors.Is(err, ledger.ErrConflict) {
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					acked[r.Hash] = true
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	a.Close()
	b.Close()
	r, _ := openWith(t, srv, cfg)
	segs, err := r.Segments(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range segs[:len(segs)-1] {
		if !s.Sealed || s.Bytes < cfg.SegmentBytes {
			t.Errorf("segment %d %s: sealed %v at %d bytes (%d messages), want sealed at %d or more", i, s.Stream, s.Sealed, s.Bytes, s.Last-s.First+1, cfg.SegmentBytes)
		}
	}
	rep, err := chain.Audit(context.Background(), r)
	if err != nil || len(rep.Quarantined) > 0 {
		t.Fatalf("audit: %v, quarantined %v", err, rep.Quarantined)
	}
	seen := 0
	if err := r.EventsFrom(context.Background(), 0, func(rec event.Record) error {
		if acked[rec.Hash] {
			seen++
		}
		return nil
	}); err != nil || seen != len(acked) {
		t.Fatalf("%d of %d acknowledged events read back across %d segments (%v)", seen, len(acked), len(segs), err)
	}
	t.Logf("%d segments, %d events", len(segs), len(acked))
}
