//go:build !linux

package main

// scrubEnvironBlock does nothing here: only Linux shows a process's
// original environment (/proc/<pid>/environ) after it changed its own.
func scrubEnvironBlock(string) {}
