package embedded

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/keyledger/keyledger/ledger/internal/blockfile"
	"github.com/keyledger/keyledger/ledger/salvage"
)

// Damaged stores. nats-server recovers each stream from its files when
// JetStream starts; a stream whose files it cannot read (a compressed
// block that does not decompress, with index.db missing or stale after a
// crash) is left out, and every later call answers "stream not found" —
// or, for a writer that creates its streams, fails again on the same
// files. Start refuses instead, naming each stream left out, what
// nats-server said, and for a ledger stream what its block files still
// hold (package salvage) and how to save it: nothing is changed on disk.
//
// Worse, an uncompressed block with a record that fails its checksum is
// "repaired" by nats-server when it rebuilds or loads it: the file is cut
// at that record and every later record in it is dropped, fsynced —
// acknowledged events destroyed over one flipped byte. So before the
// server starts, Start reads every uncompressed block of the ledger's
// streams itself (with the default S2 compression only the last one or
// two: sealed blocks are compressed, and nats-server does not cut those)
// and refuses to start on one whose damage has intact records after it.
// Damage at the very end of a stream (a write torn by a crash, never
// acknowledged) is left to nats-server, whose cut loses nothing else.
//
// Streams whose contents another copy repairs (Options.Repairable: the
// material buckets, kept twice) are not refused: a damaged block of theirs
// is moved aside into <data-dir>/quarantine before the server starts, and
// the stream's index.db removed, so nats-server rebuilds the stream without
// it at once, rather than cutting the block while it serves (its rebuild
// then runs in the background and has been seen to drop what was written
// meanwhile, repairs included). The material store rewrites what the
// block held from the other copy at start.

// UnrecoveredError is Start's refusal when streams on disk were not
// recovered.
type UnrecoveredError struct {
	DataDir string // the data directory (the parent of Options.DataDir)
	Streams []UnrecoveredStream
}

// UnrecoveredStream is one stream nats-server did not recover, or that
// Start did not let it open.
type UnrecoveredStream struct {
	Name  string
	Dir   string
	Cause string // what nats-server reported, if it did; or why Start refused
	// Salvage is what the block files of a ledger stream still hold
	// (nil for other streams, or when they could not be read).
	Salvage *salvage.Report
}

func (e *UnrecoveredError) Error() string {
	var b strings.Builder
	for i, s := range e.Streams {
		if i > 0 {
			b.WriteString("; ")
		}
		cause := s.Cause
		if cause == "" {
			cause = "no reason given"
		}
		fmt.Fprintf(&b, "embedded: nats-server could not recover stream %s from %s (%s): its files are damaged and cannot be read whole; nothing was changed",
			s.Name, s.Dir, cause)
		if s.Salvage != nil {
			fmt.Fprintf(&b, ". What its block files still hold: %s", strings.ReplaceAll(strings.TrimSpace(s.Salvage.Summary()), "\n", "; "))
			fmt.Fprintf(&b, ". Save every event that checks out with `keyledger audit export --salvage --data-dir %s --out DIR`,"+
				" then restore from a backup", e.DataDir)
		}
	}
	return b.String()
}

// recoveries collects what nats-server logs about streams it could not
// recover.
type recoveries struct {
	mu     sync.Mutex
	causes map[string]string // stream → nats-server's error
}

var recreateFailed = regexp.MustCompile(`^\s*Error recreating stream "([^"]+)": (.*)$`)

// note records a stream recovery failure the server logged.
func (r *recoveries) note(msg string) {
	m := recreateFailed.FindStringSubmatch(msg)
	if m == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.causes == nil {
		r.causes = map[string]string{}
	}
	r.causes[m[1]] = m[2]
}

func (r *recoveries) cause(stream string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.causes[stream]
}

// checkRecovered compares the global account's stream directories with
// the streams JetStream holds, and returns an *UnrecoveredError naming
// those it left out.
func checkRecovered(ns *server.Server, storeDir string, ledgerStreams []string, rec *recoveries) error {
	dir := filepath.Join(storeDir, "jetstream", server.DEFAULT_GLOBAL_ACCOUNT, "streams")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil // nothing stored yet
	}
	acc, err := ns.JszAccount(&server.JSzOptions{Account: server.DEFAULT_GLOBAL_ACCOUNT, Streams: true})
	if err != nil {
		return fmt.Errorf("embedded: listing recovered streams: %w", err)
	}
	have := map[string]bool{}
	for _, s := range acc.Streams {
		have[s.Name] = true
	}
	var missing []UnrecoveredStream
	for _, e := range ents {
		if !e.IsDir() || have[e.Name()] {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "meta.inf")); err != nil {
			continue // not a stream nats-server would recover
		}
		u := UnrecoveredStream{Name: e.Name(), Dir: filepath.Join(dir, e.Name()), Cause: rec.cause(e.Name())}
		if ledger := ledgerOf(e.Name(), ledgerStreams); ledger != "" {
			if rep, err := salvage.Diagnose(context.Background(), storeDir, ledger, ""); err == nil {
				u.Salvage = rep
			}
		}
		missing = append(missing, u)
	}
	if len(missing) == 0 {
		return nil
	}
	slices.SortFunc(missing, func(a, b UnrecoveredStream) int { return strings.Compare(a.Name, b.Name) })
	return &UnrecoveredError{DataDir: filepath.Dir(filepath.Clean(storeDir)), Streams: missing}
}

// ledgerOf is the ledger stream a stream name is a segment of, or "".
func ledgerOf(name string, ledgers []string) string {
	for _, l := range ledgers {
		if name == l {
			return l
		}
		if rest, ok := strings.CutPrefix(name, l+"_"); ok && rest != "" && strings.Trim(rest, "0123456789") == "" {
			return l
		}
	}
	return ""
}

// preflight reads the uncompressed blocks of the ledger's streams before
// nats-server opens them, and refuses (an *UnrecoveredError) when one has
// damage followed by intact records, which nats-server would drop.
func preflight(storeDir string, ledgerStreams []string) error {
	dir := filepath.Join(storeDir, "jetstream", server.DEFAULT_GLOBAL_ACCOUNT, "streams")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil // nothing stored yet
	}
	var bad []UnrecoveredStream
	for _, e := range ents {
		ledger := ledgerOf(e.Name(), ledgerStreams)
		if ledger == "" || !e.IsDir() {
			continue
		}
		cause, err := cutWouldDrop(storeDir, e.Name())
		if err != nil {
			return fmt.Errorf("embedded: checking stream %s: %w", e.Name(), err)
		}
		if cause == "" {
			continue
		}
		u := UnrecoveredStream{Name: e.Name(), Dir: filepath.Join(dir, e.Name()), Cause: cause}
		if rep, err := salvage.Diagnose(context.Background(), storeDir, ledger, ""); err == nil {
			u.Salvage = rep
		}
		bad = append(bad, u)
	}
	if len(bad) == 0 {
		return nil
	}
	return &UnrecoveredError{DataDir: filepath.Dir(filepath.Clean(storeDir)), Streams: bad}
}

// cutWouldDrop names the first uncompressed block of stream with damage
// followed by intact records, or returns "".
func cutWouldDrop(storeDir, stream string) (string, error) {
	msgs := blockfile.MsgsDir(storeDir, stream)
	idx, err := blockfile.Blocks(msgs)
	if err != nil {
		if os.IsNotExist(err) {
			return "", nil
		}
		return "", err
	}
	for _, i := range idx {
		if compressed, err := blockfile.IsCompressed(msgs, i); err != nil || compressed {
			continue // nats-server refuses a damaged compressed block whole, and cuts nothing
		}
		b, err := blockfile.ReadBlock(msgs, stream, i)
		if err != nil {
			return "", err
		}
		for _, d := range b.Damage {
			if d.Before != 0 {
				return fmt.Sprintf("block %s has a record that fails its checksum with intact records after it (%s); "+
					"nats-server would cut the block there and drop them, so it was not started on it", filepath.Base(b.Path), d), nil
			}
		}
	}
	return "", nil
}

// quarantine moves every damaged block of the repairable streams aside
// (but a torn last write) and removes their index.db, returning what it
// moved (for the log).
func quarantine(storeDir string, streams []string) ([]string, error) {
	var moved []string
	for _, stream := range streams {
		msgs := blockfile.MsgsDir(storeDir, stream)
		idx, err := blockfile.Blocks(msgs)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return moved, err
		}
		damaged := false
		for n, i := range idx {
			b, err := blockfile.ReadBlock(msgs, stream, i)
			if err != nil {
				return moved, err
			}
			// Damage with nothing after it at the end of the last block
			// is a write a crash tore, never acknowledged: nats-server
			// drops it when it recovers, and nothing else.
			last := n == len(idx)-1
			if !slices.ContainsFunc(b.Damage, func(d blockfile.Damage) bool { return d.Before != 0 || !last }) {
				continue
			}
			dir := filepath.Join(filepath.Dir(filepath.Clean(storeDir)), "quarantine", stream)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return moved, err
			}
			to := filepath.Join(dir, fmt.Sprintf("%d.blk.%s", i, time.Now().UTC().Format("20060102T150405Z")))
			if err := os.Rename(b.Path, to); err != nil {
				return moved, err
			}
			moved = append(moved, fmt.Sprintf("%s/%s (%s) → %s", stream, filepath.Base(b.Path), b.Damage[0], to))
			damaged = true
		}
		if damaged {
			if err := os.Remove(filepath.Join(msgs, "index.db")); err != nil && !os.IsNotExist(err) {
				return moved, err
			}
		}
	}
	return moved, nil
}
