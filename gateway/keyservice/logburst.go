package keyservice

import (
	"log/slog"
	"sync"
	"time"
)

// refusalLogInterval is how often a run of like failures is summarised.
const refusalLogInterval = 10 * time.Second

// burstLog logs failures that come in runs — every request refused while
// the disk is full took a line of its own, 38,029 in 12 s — as the first
// one at once, then at most one summary per interval: how many more, and
// the last one's attributes. A failure after a quiet interval is logged at
// once again. Safe for concurrent use.
type burstLog struct {
	log      *slog.Logger
	msg      string
	interval time.Duration

	mu         sync.Mutex
	quietAfter time.Time // until then, failures are counted, not logged
	suppressed int
	last       []any
	timer      *time.Timer
}

func newBurstLog(log *slog.Logger, msg string, interval time.Duration) *burstLog {
	return &burstLog{log: log, msg: msg, interval: interval}
}

// Error logs one failure (attributes as slog's), or counts it.
func (b *burstLog) Error(args ...any) {
	now := time.Now()
	b.mu.Lock()
	if !now.Before(b.quietAfter) && b.suppressed == 0 {
		b.quietAfter = now.Add(b.interval)
		b.mu.Unlock()
		b.log.Error(b.msg, args...)
		return
	}
	b.suppressed++
	b.last = args
	if b.timer == nil {
		b.timer = time.AfterFunc(b.quietAfter.Sub(now), b.summarise)
	}
	b.mu.Unlock()
}

// summarise logs how many failures were counted since the last line, and
// opens the next interval.
func (b *burstLog) summarise() {
	b.mu.Lock()
	n, last := b.suppressed, b.last
	b.suppressed, b.last, b.timer = 0, nil, nil
	b.quietAfter = time.Now().Add(b.interval)
	b.mu.Unlock()
	if n > 0 {
		// "more": like failures not logged one by one within "window"; the
		// other attributes are the last one's.
		b.log.Error(b.msg, append([]any{"more", n, "window", b.interval.String()}, last...)...)
	}
}
