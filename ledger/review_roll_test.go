package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/keyledger/keyledger/ledger"
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
