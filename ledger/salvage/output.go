package salvage

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/internal/blockfile"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/offline"
)

// storedCheckpoint is one signed checkpoint read from the checkpoint
// stream's blocks.
type storedCheckpoint struct {
	signed  []byte
	size    int64
	root    tlog.Hash
	writers map[string]string
	revoked map[string]string // writers it names as revoked
	sigOK   bool              // its signature verifies under the verifier key
	checked bool              // compared with the salvaged prefix
}

// readCheckpoints reads the blocks of both checkpoint streams — the kept
// one and the recent window (package checkpoint thins them) — damage
// tolerated: what checks out is used; each opened under vkey, sorted by
// size.
func readCheckpoints(storeDir, stream, vkey string, rep *Report) ([]storedCheckpoint, error) {
	var out []storedCheckpoint
	for _, name := range []string{stream + "_CHECKPOINTS", stream + "_CHECKPOINTS_RECENT"} {
		msgs := blockfile.MsgsDir(storeDir, name)
		idx, err := blockfile.Blocks(msgs)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("salvage: %s: %w", name, err)
		}
		for _, i := range idx {
			b, err := blockfile.ReadBlock(msgs, name, i)
			if err != nil {
				return nil, fmt.Errorf("salvage: %s: %w", name, err)
			}
			for _, d := range b.Damage {
				rep.Damage = append(rep.Damage, name+"/"+d.String())
			}
			for _, r := range b.Records {
				rep.Checkpoints.Stored++
				cp := storedCheckpoint{signed: r.Data}
				if vkey != "" {
					c, err := merkle.Open(r.Data, vkey)
					if err != nil {
						rep.Checkpoints.BadSig++
						continue
					}
					cp.size, cp.root, cp.writers, cp.revoked, cp.sigOK = c.Size, c.Root, c.Writers(), c.Revoked(), true
				}
				out = append(out, cp)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b storedCheckpoint) int {
		switch {
		case a.size < b.size:
			return -1
		case a.size > b.size:
			return 1
		}
		return 0
	})
	return out, nil
}

// checkpointsAt checks every checkpoint of the prefix's current size
// against its root.
func (s *state) checkpointsAt(size int64) {
	i, ok := slices.BinarySearchFunc(s.cps, size, func(c storedCheckpoint, size int64) int {
		switch {
		case c.size < size:
			return -1
		case c.size > size:
			return 1
		}
		return 0
	})
	if !ok {
		return
	}
	root := s.tree.root()
	c := &s.rep.Checkpoints
	for ; i < len(s.cps) && s.cps[i].size == size; i++ {
		cp := &s.cps[i]
		if !cp.sigOK {
			continue
		}
		cp.checked = true
		if cp.root != root {
			c.Mismatch++
			continue
		}
		c.Verified++
		c.NewestSize = size
		s.bestCheckpoint = cp.signed
	}
}

// prefix is the Merkle tree (RFC 6962) of the salvaged events before the
// first gap, kept as its frontier: the hashes of its maximal complete
// subtrees, so memory is logarithmic in its size.
type prefix struct {
	size     int64
	frontier []node
}

type node struct {
	level int
	hash  tlog.Hash
}

func (p *prefix) append(raw []byte) {
	n := node{hash: tlog.RecordHash(raw)}
	for len(p.frontier) > 0 && p.frontier[len(p.frontier)-1].level == n.level {
		left := p.frontier[len(p.frontier)-1]
		p.frontier = p.frontier[:len(p.frontier)-1]
		n = node{level: n.level + 1, hash: tlog.NodeHash(left.hash, n.hash)}
	}
	p.frontier = append(p.frontier, n)
	p.size++
}

// root is the tree hash of the prefix: its complete subtrees folded right
// to left.
func (p *prefix) root() tlog.Hash {
	if len(p.frontier) == 0 {
		return tlog.Hash{}
	}
	h := p.frontier[len(p.frontier)-1].hash
	for i := len(p.frontier) - 2; i >= 0; i-- {
		h = tlog.NodeHash(p.frontier[i].hash, h)
	}
	return h
}

// writerSet writes an export directory.
type writerSet struct {
	dir          string
	events, sigs *os.File
	ew, sw       *bufio.Writer
	done         bool
}

func create(dir string) (*writerSet, error) {
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("salvage: %s is not empty", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("salvage: %w", err)
	}
	w := &writerSet{dir: dir}
	var err error
	if w.events, err = os.OpenFile(filepath.Join(dir, offline.EventsFile), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err != nil {
		return nil, fmt.Errorf("salvage: %w", err)
	}
	if w.sigs, err = os.OpenFile(filepath.Join(dir, offline.SignaturesFile), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err != nil {
		w.events.Close()
		return nil, fmt.Errorf("salvage: %w", err)
	}
	w.ew, w.sw = bufio.NewWriterSize(w.events, 1<<20), bufio.NewWriter(w.sigs)
	return w, nil
}

// message writes one saved message: its events and its signature line.
func (w *writerSet) message(m chain.Message, recs []event.Record) error {
	for _, r := range recs {
		w.ew.Write(r.Raw)
		w.ew.WriteByte('\n')
	}
	line, err := json.Marshal(offline.Signature(m, recs, len(recs)))
	if err != nil {
		return err
	}
	w.sw.Write(line)
	return w.sw.WriteByte('\n')
}

// commit finishes the files, writes the checkpoint and the report, and
// fsyncs them all.
func (w *writerSet) commit(rep *Report, checkpoint []byte) error {
	w.done = true
	var errs []error
	for _, f := range []struct {
		b *bufio.Writer
		f *os.File
	}{{w.ew, w.events}, {w.sw, w.sigs}} {
		errs = append(errs, f.b.Flush(), f.f.Sync(), f.f.Close())
	}
	if len(checkpoint) > 0 {
		errs = append(errs, writeSynced(filepath.Join(w.dir, offline.CheckpointFile), checkpoint))
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	errs = append(errs, err, writeSynced(filepath.Join(w.dir, ReportFile), append(js, '\n')))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("salvage: writing %s: %w", w.dir, err)
	}
	return nil
}

// abort closes the files of an unfinished export.
func (w *writerSet) abort() {
	if !w.done {
		w.events.Close()
		w.sigs.Close()
	}
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	return errors.Join(err, f.Sync(), f.Close())
}
