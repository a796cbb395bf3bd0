package ledger_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/ledger/event"
)

func openWith(t *testing.T, srv *embedded.Server, cfg ledger.Config) (*ledger.Ledger, chain.Head) {
	t.Helper()
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	l, err := ledger.Open(context.Background(), nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	head, err := l.Replay(context.Background(), chain.Head{}, func(event.Record) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	return l, head
}

// Two instances append at once while their writers roll to a new segment
// every few messages: no acknowledged event is lost, the chain is one
// chain across the segments, stream sequences continue, and a fresh
// reader (a restart) reads it whole.
func TestRollAcrossSegmentsUnderContention(t *testing.T) {
	srv := startServer(t, t.TempDir())
	cfg := ledger.Config{SegmentMessages: 16}
	a, ha := openWith(t, srv, cfg)
	b, hb := openWith(t, srv, cfg)
	a.Start(ha)
	b.Start(hb)
	const each = 240
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[event.Hash]bool{}
	for _, l := range []*ledger.Ledger{a, b} {
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each/8; i++ {
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
	if len(segs) < 3 {
		t.Fatalf("%d segments, want several: %+v", len(segs), segs)
	}
	for i, s := range segs {
		if i > 0 && s.First != segs[i-1].Last+1 {
			t.Fatalf("segment %s starts at %d, the one before ends at %d", s.Stream, s.First, segs[i-1].Last)
		}
		if i < len(segs)-1 && !s.Sealed {
			t.Fatalf("segment %s before the last is not sealed", s.Stream)
		}
	}
	rep, err := chain.Audit(context.Background(), r)
	if err != nil || len(rep.Quarantined) > 0 {
		t.Fatalf("audit: %v, quarantined %v", err, rep.Quarantined)
	}
	seen := 0
	err = r.EventsFrom(context.Background(), 0, func(rec event.Record) error {
		if acked[rec.Hash] {
			seen++
		}
		return nil
	})
	if err != nil || seen != len(acked) {
		t.Fatalf("%d of %d acknowledged events read back across %d segments (%v)", seen, len(acked), len(segs), err)
	}
	if rep.Head.Count != uint64(len(acked)) {
		t.Fatalf("chain holds %d events, %d acknowledged", rep.Head.Count, len(acked))
	}
	// A direct get by sequence finds the segment holding it.
	first := segs[1].First
	if _, err := r.EventHashAt(context.Background(), first, 0); !errors.Is(err, ledger.ErrNoEvent) {
		t.Fatalf("EventHashAt(%d, index 0) = %v, want ErrNoEvent (that message holds later events)", first, err)
	}
}

// A segment stream deleted by hand (NATS admin), with no SegmentRemoved
// recorded, stops every reader with an error naming the missing
// sequences; nothing is skipped silently.
func TestDeletedSegmentWithoutRemovalIsRefused(t *testing.T) {
	srv := startServer(t, t.TempDir())
	cfg := ledger.Config{SegmentMessages: 2}
	l, h := openWith(t, srv, cfg)
	l.Start(h)
	for i := 0; i < 8; i++ {
		if _, err := l.Append(context.Background(), newEvent("Encrypt")); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	nc, _ := srv.Connect("admin")
	defer nc.Close()
	js, _ := jetstream.New(nc)
	for _, victim := range []string{"KEYLEDGER_1", "KEYLEDGER"} {
		if err := js.DeleteStream(context.Background(), victim); err != nil {
			t.Fatal(err)
		}
		nc2, _ := srv.Connect("test")
		defer nc2.Close()
		r, err := ledger.Open(context.Background(), nc2, cfg)
		if err == nil {
			_, err = r.Replay(context.Background(), chain.Head{}, func(event.Record) error { return nil })
		}
		var missing *ledger.MissingSegmentError
		if !errors.As(err, &missing) {
			t.Fatalf("after deleting %s: %v, want a MissingSegmentError", victim, err)
		}
		t.Logf("after deleting %s: %v", victim, err)
	}
}

// The ledger streams keep Message-IDs for ten seconds, not nats-server's
// two minutes (which a restart right after load spends seconds
// rebuilding), and opening a ledger brings the current segment of an
// older one, made by a roll with the old window, to it.
func TestDedupeWindowOfTheCurrentSegment(t *testing.T) {
	srv := startServer(t, t.TempDir())
	cfg := ledger.Config{SegmentMessages: 2}
	l, h := openWith(t, srv, cfg)
	l.Start(h)
	for range 6 {
		if _, err := l.Append(context.Background(), newEvent("Encrypt")); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	current := func() jetstream.StreamConfig {
		t.Helper()
		r, _ := openWith(t, srv, cfg)
		segs, err := r.Segments(ctx)
		if err != nil || len(segs) < 2 {
			t.Fatalf("segments %v, %v: want a rolled ledger", segs, err)
		}
		st, err := js.Stream(ctx, segs[len(segs)-1].Stream)
		if err != nil {
			t.Fatal(err)
		}
		return st.CachedInfo().Config
	}
	c := current()
	if c.Duplicates != 10*time.Second {
		t.Fatalf("a new segment's duplicates window is %v, want 10s", c.Duplicates)
	}
	c.Duplicates = 2 * time.Minute // as rolled by an older build
	if _, err := js.UpdateStream(ctx, c); err != nil {
		t.Fatal(err)
	}
	if got := current().Duplicates; got != 10*time.Second {
		t.Fatalf("after opening, the current segment's duplicates window is %v, want 10s", got)
	}
}

// A segment rolls once it holds SegmentBytes, whatever its messages
// hold: every sealed segment reached the bound, the last is still being
// written, and a fresh reader reads the chain whole across them.
func TestRollBySize(t *testing.T) {
	srv := startServer(t, t.TempDir())
	cfg := ledger.Config{SegmentBytes: 4 << 10, FollowInterval: 10 * time.Millisecond}
	l, h := openWith(t, srv, cfg)
	l.Start(h)
	const n = 80
	for range n {
		if _, err := l.Append(context.Background(), newEvent("Encrypt")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // one message each, so the bound is what rolls
	}
	segs, err := l.Segments(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if len(segs) < 2 {
		t.Fatalf("%d segment(s) after %d messages of about 300 bytes under a bound of %d bytes", len(segs), n, cfg.SegmentBytes)
	}
	for _, s := range segs[:len(segs)-1] {
		if !s.Sealed || s.Bytes < cfg.SegmentBytes {
			t.Errorf("segment %s: sealed %v, %d bytes; want sealed at %d bytes or more", s.Stream, s.Sealed, s.Bytes, cfg.SegmentBytes)
		}
	}
	if last := segs[len(segs)-1]; last.Sealed {
		t.Errorf("the last segment %s is sealed", last.Stream)
	}
	r, _ := openWith(t, srv, cfg)
	head, err := r.Replay(context.Background(), chain.Head{}, func(event.Record) error { return nil })
	if err != nil || head.Index+1 != n {
		t.Fatalf("a fresh reader read %+v, %v; want %d events", head, err, n)
	}
	t.Logf("%d segments for %d messages under %d bytes each", len(segs), n, cfg.SegmentBytes)
}
