package main

import (
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"time"
)

// heapProfileEnv names a file to write a heap profile to (pprof format),
// for measuring what a long command (backup, restore) keeps in memory. It
// is rewritten each time the live heap reaches a new peak, so at exit it
// describes the peak, not the quiet end.
const heapProfileEnv = "KEYLEDGER_HEAP_PROFILE"

// profileHeapPeaks starts watching the heap if KEYLEDGER_HEAP_PROFILE is
// set; the returned stop writes nothing more.
func profileHeapPeaks() (stop func()) {
	path := os.Getenv(heapProfileEnv)
	if path == "" {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			metrics.Read(sample)
			// Write again only on a real new peak (an eighth above the last).
			if v := sample[0].Value.Uint64(); v > peak+peak/8 {
				peak = v
				writeHeapProfile(path)
			}
		}
	}()
	return func() { close(done); <-finished }
}

func writeHeapProfile(path string) {
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	runtime.GC() // the profile's in-use figures are as of the last GC
	_ = pprof.Lookup("heap").WriteTo(f, 0)
}
