package main

import (
	"context"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// offsetClock is the wall clock moved forward by a duration read from a
// file (e.g. "192h"), re-read every 100 ms. It is how tests make deletion
// windows, rotation periods and expiries end in a real `serve` process;
// nothing else should use it.
type offsetClock struct {
	path   string
	offset atomic.Int64
}

func newOffsetClock(ctx context.Context, path string) (*offsetClock, error) {
	c := &offsetClock{path: path}
	if err := c.read(); err != nil {
		return nil, err
	}
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = c.read() // keep the last good offset while the file is rewritten
			}
		}
	}()
	return c, nil
}

func (c *offsetClock) read() error {
	b, err := os.ReadFile(c.path)
	if err != nil {
		return err
	}
	d, err := time.ParseDuration(strings.TrimSpace(string(b)))
	if err != nil {
		return err
	}
	c.offset.Store(int64(d))
	return nil
}

// Now is the wall clock plus the offset.
func (c *offsetClock) Now() time.Time {
	return time.Now().UTC().Add(time.Duration(c.offset.Load()))
}
