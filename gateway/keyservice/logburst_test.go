package keyservice

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimSpace(l.b.String()), "\n")
}

// TestBurstLog: a run of failures logs its first at once and the rest as
// one summary at the end of the interval, with the count and the last
// one's attributes; a failure after a quiet interval is logged at once.
func TestBurstLog(t *testing.T) {
	var out lockedBuffer
	b := newBurstLog(slog.New(slog.NewTextHandler(&out, nil)), "ledger append failed", 100*time.Millisecond)
	for i := range 100 {
		b.Error("n", i)
	}
	if got := out.lines(); len(got) != 1 || !strings.Contains(got[0], "n=0") {
		t.Fatalf("first of a run: %q", got)
	}
	waitFor := func(what string, ok func([]string) bool) []string {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if got := out.lines(); ok(got) {
				return got
			}
		}
		t.Fatalf("%s: %q", what, out.lines())
		return nil
	}
	got := waitFor("summary", func(l []string) bool { return len(l) == 2 })
	if !strings.Contains(got[1], "more=99") || !strings.Contains(got[1], "n=99") || !strings.Contains(got[1], "window=100ms") {
		t.Fatalf("summary: %q", got[1])
	}
	time.Sleep(250 * time.Millisecond) // a quiet interval after the summary's
	if got := out.lines(); len(got) != 2 {
		t.Fatalf("a summary of nothing was logged: %q", got)
	}
	b.Error("n", 100)
	if got := out.lines(); len(got) != 3 || !strings.Contains(got[2], "n=100") || strings.Contains(got[2], "more=") {
		t.Fatalf("after a quiet interval: %q", got)
	}
}
