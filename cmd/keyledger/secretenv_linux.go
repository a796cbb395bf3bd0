package main

import (
	"bytes"
	"os"
	"strconv"
)

// scrubEnvironBlock overwrites name's entries in the environment block the
// kernel gave the process (what /proc/<pid>/environ reads), through
// /proc/self/mem. Best effort: where /proc is not mounted or not writable
// the entry stays there (it is readable only by the same user and root).
func scrubEnvironBlock(name string) {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return
	}
	// Fields after the command name (which may hold spaces) in
	// parentheses; env_start and env_end are fields 50 and 51 (proc(5)).
	rest := stat[bytes.LastIndexByte(stat, ')')+1:]
	fields := bytes.Fields(rest) // fields[0] is field 3
	if len(fields) < 51-2 {
		return
	}
	start, err1 := strconv.ParseInt(string(fields[50-3]), 10, 64)
	end, err2 := strconv.ParseInt(string(fields[51-3]), 10, 64)
	if err1 != nil || err2 != nil || end <= start || end-start > 1<<24 {
		return
	}
	mem, err := os.OpenFile("/proc/self/mem", os.O_RDWR, 0)
	if err != nil {
		return
	}
	defer mem.Close()
	block := make([]byte, end-start)
	if _, err := mem.ReadAt(block, start); err != nil {
		return
	}
	environEntries(block, name, func(off, n int) {
		_, _ = mem.WriteAt(make([]byte, n), start+int64(off))
	})
	clear(block)
}
