// Package progress reports how far a long walk over the ledger has come
// (replay, verification, export): a bar redrawn in place on a terminal,
// otherwise a log line every interval, each with events/s and an ETA.
//
// A Meter is safe for concurrent use.
package progress

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// Meter tracks one walk. Position is in the unit Total is (stream
// sequences); events are counted for the rate.
type Meter struct {
	label    string
	total    uint64
	start    uint64 // position the walk started from
	term     io.Writer
	log      *slog.Logger
	every    time.Duration
	began    time.Time
	mu       sync.Mutex
	pos      uint64
	events   uint64
	lastShow time.Time
	shown    bool // a report was shown: Done closes it (a short walk stays quiet)
	now      func() time.Time
}

// Options choose where a Meter reports.
type Options struct {
	// Terminal, if set, gets a bar redrawn in place (stderr of a CLI on a
	// terminal; see IsTerminal). Otherwise Logger gets a line every Every.
	Terminal io.Writer
	Logger   *slog.Logger
	Every    time.Duration // default 5s (a terminal is redrawn every 200ms)
}

// IsTerminal reports whether f is a character device (a terminal).
func IsTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// New starts a meter for a walk from position start to total.
func New(label string, start, total uint64, o Options) *Meter {
	if o.Every == 0 {
		o.Every = 5 * time.Second
		if o.Terminal != nil {
			o.Every = 200 * time.Millisecond
		}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	m := &Meter{label: label, start: start, total: total, term: o.Terminal, log: o.Logger, every: o.Every, now: time.Now, pos: start}
	m.began = m.now()
	m.lastShow = m.began
	return m
}

// Add notes that the walk reached position pos, with events more events.
func (m *Meter) Add(pos, events uint64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pos, m.events = max(m.pos, pos), m.events+events
	if now := m.now(); now.Sub(m.lastShow) >= m.every {
		m.lastShow = now
		m.show(false)
	}
}

// Done reports the end of a walk that showed progress; a walk shorter
// than one interval stays quiet.
func (m *Meter) Done() {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.shown {
		m.show(true)
	}
}

// Line is the current report: position, events, rate and ETA.
func (m *Meter) Line() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	frac, rate, eta := m.figures()
	return fmt.Sprintf("%s: %.1f%% %d events %.0f events/s ETA %s", m.label, 100*frac, m.events, rate, eta)
}

func (m *Meter) figures() (frac, rate float64, eta time.Duration) {
	elapsed := m.now().Sub(m.began).Seconds()
	if elapsed > 0 {
		rate = float64(m.events) / elapsed
	}
	frac = 1
	if span := m.total - min(m.start, m.total); span > 0 {
		frac = float64(m.pos-min(m.start, m.pos)) / float64(span)
		frac = min(frac, 1)
	}
	if frac > 0 && frac < 1 && elapsed > 0 {
		eta = time.Duration(elapsed * (1 - frac) / frac * float64(time.Second)).Round(time.Second)
	}
	return frac, rate, eta
}

func (m *Meter) show(final bool) {
	m.shown = true
	frac, rate, eta := m.figures()
	if m.term != nil {
		const width = 30
		bar := strings.Repeat("=", int(frac*width)) + strings.Repeat(" ", width-int(frac*width))
		end := ""
		if final {
			end = "\n"
		}
		fmt.Fprintf(m.term, "\r%s [%s] %5.1f%% %d events %.0f events/s ETA %-8s%s", m.label, bar, 100*frac, m.events, rate, eta, end)
		return
	}
	msg := m.label + ": progress"
	if final {
		msg = m.label + ": done"
	}
	m.log.Info(msg, "percent", fmt.Sprintf("%.1f", 100*frac), "events", m.events, "events_per_s", int(rate),
		"eta", eta.String(), "elapsed", m.now().Sub(m.began).Round(time.Millisecond).String())
}
