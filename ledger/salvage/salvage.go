// Package salvage saves what a damaged ledger still holds, read from the
// block files of a stopped embedded data directory without nats-server
// (which refuses a whole stream over one damaged block), and says exactly
// what is lost.
//
// Salvage reads the ledger's segment streams block by block
// (ledger/internal/blockfile: only records whose nats-server checksum
// holds), folds every message with the rule every reader applies
// (chain.Folder: signed by a registered writer for its place on its
// chain, linked to its chain's last valid event), and writes the messages that pass into
// an export directory in the offline form `audit export` writes:
// offline.EventsFile, offline.SignaturesFile, offline.CheckpointFile, plus
// ReportFile naming what was lost.
//
// Around a gap nothing is relinked. The chain resumes at the first
// message after the gap whose writer signature verifies, anchored at the
// previous hash its first event names, and the break is reported: the
// stream sequences and event indexes that are gone, the hash the first
// event after them names and the last event before them. Writers after a
// gap must be registered before it or named by a stored checkpoint that
// verifies under the checkpoint verifier key (rule 14): a writer
// registered inside the lost range is not trusted on its word.
//
// The Merkle tree of what is salvaged can only match the signed
// checkpoints up to the first gap: each stored checkpoint is checked
// against the prefix (Report.Checkpoints says how many verify, which is
// the newest, and how many cover lost events and cannot be checked).
// offline.CheckpointFile holds the newest that verifies, so `audit verify
// --offline` on the export checks its signature and names the gap as the
// first broken link.
//
// On a ledger with several chains (package chain) each chain resumes
// after a gap on its own, at its first message after it: a chain whose
// message there continues what it held before lost nothing; another is
// reported as a break on that chain (Break.Chain), resumed at the previous
// hash its event names and the previous message its writer's
// Nats-Expected-Last-Subject-Sequence header names (the writer signed
// over that sequence, so the header is checked, not trusted). Positions
// (Report.FirstIndex, LastIndex: events in stream order) after a gap count
// the events saved, not those lost.
//
// Memory holds one block (8 MiB of records) and the stored checkpoints'
// sizes and roots, whatever the ledger's length. Salvage never sees key
// material: events hold none.
package salvage

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/internal/blockfile"
	"github.com/keyledger/keyledger/ledger/internal/streamname"
	"github.com/keyledger/keyledger/ledger/writer"
)

// ReportFile is the salvage report in an export directory (Report as JSON).
const ReportFile = "salvage.json"

// Request says what to salvage and where.
type Request struct {
	// StoreDir is the embedded server's JetStream directory
	// (<data-dir>/jetstream). The server must be stopped.
	StoreDir string
	Stream   string // ledger stream (default KEYLEDGER)
	// Dir is the export directory to create (must not exist or be empty);
	// "" only reads and reports (Diagnose).
	Dir string
	// VerifierKey is the checkpoint verifier key (note vkey text); empty:
	// checkpoints are not checked and name no writers.
	VerifierKey string
	// Progress, if set, is called after each block with the stream
	// sequence reached.
	Progress func(seq uint64)
	// Running says nats-server is writing the stream meanwhile: the last
	// block may end in a record being written, not lost.
	Running bool
}

// Report is what a salvage found and saved.
type Report struct {
	Stream      string   `json:"stream"`
	Blocks      int      `json:"blocks"`
	Messages    int      `json:"messages"` // messages saved
	Events      int      `json:"events"`   // events saved
	FirstSeq    uint64   `json:"firstSeq"` // first stream sequence read
	LastSeq     uint64   `json:"lastSeq"`  // last stream sequence read
	FirstIndex  uint64   `json:"firstIndex"`
	LastIndex   uint64   `json:"lastIndex"`
	Lost        []Loss   `json:"lost,omitempty"`
	Breaks      []Break  `json:"breaks,omitempty"`
	Quarantined []Refuse `json:"quarantined,omitempty"`
	Damage      []string `json:"damage,omitempty"` // unreadable stretches of block files
	Writers     []string `json:"writers"`          // writer IDs trusted
	Checkpoints Checks   `json:"checkpoints"`
	CheckedNATS string   `json:"natsServerFormat"`
}

// Loss is a run of stream sequences no block holds readably.
type Loss struct {
	FromSeq uint64 `json:"fromSeq"`
	ToSeq   uint64 `json:"toSeq"` // 0: to the end of the stream, its length unknown
	// The events lost with them: from the event after the last one saved
	// before the gap to the one before the first saved after it.
	FromIndex uint64 `json:"fromIndex"`
	ToIndex   uint64 `json:"toIndex"` // 0 with ToSeq 0: unknown
	Blocks    string `json:"blocks"`  // the damaged block files
	// PerChain: the gap was closed by a message on a writer's data chain
	// or a control chain; which events were lost is said per chain, by
	// the breaks (FromIndex, ToIndex are not set).
	PerChain bool `json:"perChain,omitempty"`
}

func (l Loss) String() string {
	seqs := fmt.Sprintf("stream sequences %d–%d", l.FromSeq, l.ToSeq)
	idx := fmt.Sprintf("event indexes %d–%d", l.FromIndex, l.ToIndex)
	if l.ToSeq == 0 {
		seqs = fmt.Sprintf("stream sequences from %d to the end", l.FromSeq)
		idx = fmt.Sprintf("event indexes from %d", l.FromIndex)
	}
	if l.ToIndex < l.FromIndex && l.ToSeq != 0 {
		idx = "no event"
	}
	if l.PerChain {
		idx = "events of the chains the breaks name"
	}
	return fmt.Sprintf("%s (%s) lost in %s", seqs, idx, l.Blocks)
}

// Break is where the salvaged chain does not link: the first event saved
// after a gap names a previous hash no saved event has.
type Break struct {
	Seq        uint64 `json:"seq"`             // the message after the gap
	Chain      string `json:"chain,omitempty"` // its chain (package chain; empty: the legacy chain)
	Index      uint64 `json:"index"`           // its first event, on its chain
	NamesPrev  string `json:"namesPrevious"`
	AfterIndex uint64 `json:"afterIndex"` // the last event saved before the gap
	AfterHash  string `json:"afterHash"`
	HasBefore  bool   `json:"hasBefore"` // false: nothing was saved before it
}

func (b Break) String() string {
	before := "no event was saved before it"
	if b.HasBefore {
		before = fmt.Sprintf("the last event saved before it is index %d (%s)", b.AfterIndex, b.AfterHash)
	}
	on := ""
	if b.Chain != "" {
		on = " on chain " + b.Chain
	}
	return fmt.Sprintf("chain broken at stream sequence %d, event index %d%s: it names previous hash %s, which was lost; %s",
		b.Seq, b.Index, on, b.NamesPrev, before)
}

// Refuse is a message read intact but refused by the fold.
type Refuse struct {
	Seq    uint64 `json:"seq"`
	Writer string `json:"writer,omitempty"`
	Reason string `json:"reason"`
}

// Checks is what the stored checkpoints say about the salvage.
type Checks struct {
	Stored      int   `json:"stored"`     // readable in the checkpoint stream
	Verified    int   `json:"verified"`   // signature and root verified against the salvaged prefix
	NewestSize  int64 `json:"newestSize"` // the newest verified checkpoint's size (0: none)
	PrefixSize  int64 `json:"prefixSize"` // events before the first gap
	BeyondGap   int   `json:"beyondGap"`  // cover events not salvaged before a gap: cannot be checked
	Mismatch    int   `json:"mismatch"`   // size within the prefix but another root
	BadSig      int   `json:"badSignature"`
	NoKey       bool  `json:"noVerifierKey,omitempty"` // none given: nothing checked
	LargestSize int64 `json:"largestSize"`             // the largest verified-signature checkpoint's size
}

// Complete reports whether nothing was lost or refused.
func (r *Report) Complete() bool {
	return len(r.Lost) == 0 && len(r.Breaks) == 0 && len(r.Quarantined) == 0 && len(r.Damage) == 0
}

// Summary is the report in a few lines for a person.
func (r *Report) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "read %d block file(s) of %s: %d events in %d messages saved (stream sequences %d–%d, event indexes %d–%d)\n",
		r.Blocks, r.Stream, r.Events, r.Messages, r.FirstSeq, r.LastSeq, r.FirstIndex, r.LastIndex)
	for _, l := range r.Lost {
		fmt.Fprintf(&b, "LOST: %s\n", l)
	}
	for _, br := range r.Breaks {
		fmt.Fprintf(&b, "BREAK: %s\n", br)
	}
	for _, q := range r.Quarantined {
		fmt.Fprintf(&b, "REFUSED: message at stream sequence %d: %s\n", q.Seq, q.Reason)
	}
	c := r.Checkpoints
	switch {
	case c.Stored == 0:
		b.WriteString("checkpoints: none readable\n")
	case c.NoKey:
		fmt.Fprintf(&b, "checkpoints: %d stored, not checked (no verifier key)\n", c.Stored)
	default:
		fmt.Fprintf(&b, "checkpoints: %d stored; %d verify against the %d events before the first gap (newest: size %d); %d cover lost events and cannot be checked",
			c.Stored, c.Verified, c.PrefixSize, c.NewestSize, c.BeyondGap)
		if c.Mismatch > 0 {
			fmt.Fprintf(&b, "; %d DO NOT MATCH the prefix (rewritten?)", c.Mismatch)
		}
		if c.BadSig > 0 {
			fmt.Fprintf(&b, "; %d have a signature that does not verify", c.BadSig)
		}
		b.WriteString("\n")
		if c.LargestSize > 0 && (r.Events == 0 || uint64(c.LargestSize) > r.LastIndex+1) {
			fmt.Fprintf(&b, "the largest signed checkpoint covers %d events: the ledger held at least event indexes 0–%d\n",
				c.LargestSize, c.LargestSize-1)
		}
	}
	return b.String()
}

// Salvage reads the ledger's block files and writes what checks out into
// req.Dir (unless empty). The error is for a salvage that could not run;
// losses are in the report.
func Salvage(ctx context.Context, req Request) (*Report, error) {
	req.Stream = streamname.Or(req.Stream)
	segs, err := segments(req.StoreDir, req.Stream)
	if err != nil {
		return nil, err
	}
	rep := &Report{Stream: req.Stream, CheckedNATS: blockfile.CheckedVersion}
	rep.Checkpoints.NoKey = req.VerifierKey == ""
	cps, err := readCheckpoints(req.StoreDir, req.Stream, req.VerifierKey, rep)
	if err != nil {
		return nil, err
	}
	var out *writerSet
	if req.Dir != "" {
		if out, err = create(req.Dir); err != nil {
			return nil, err
		}
		defer out.abort()
	}
	s := &state{req: req, rep: rep, out: out, folder: chain.NewFolder(), cps: cps, tree: &prefix{}, inPrefix: true}
	for _, seg := range segs {
		msgs := blockfile.MsgsDir(req.StoreDir, seg)
		idx, err := blockfile.Blocks(msgs)
		if err != nil {
			return nil, fmt.Errorf("salvage: %s: %w", seg, err)
		}
		for _, i := range idx {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			b, err := blockfile.ReadBlock(msgs, seg, i)
			if err != nil {
				return nil, fmt.Errorf("salvage: %s: %w", seg, err)
			}
			rep.Blocks++
			if err := s.block(seg, b); err != nil {
				return nil, err
			}
			if req.Progress != nil {
				req.Progress(s.lastSeq)
			}
		}
	}
	s.finish()
	if out != nil {
		if err := out.commit(rep, s.bestCheckpoint); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// Diagnose reads and reports without writing anything.
func Diagnose(ctx context.Context, storeDir, stream, vkey string) (*Report, error) {
	return Salvage(ctx, Request{StoreDir: storeDir, Stream: stream, VerifierKey: vkey})
}

// segments lists the ledger's segment streams present under the store, in
// order: stream, then stream_1, stream_2, …
func segments(storeDir, stream string) ([]string, error) {
	dir := filepath.Dir(blockfile.MsgsDir(storeDir, stream))
	ents, err := os.ReadDir(filepath.Dir(dir))
	if err != nil {
		return nil, fmt.Errorf("salvage: no JetStream store under %s: %w", storeDir, err)
	}
	type seg struct {
		n    int
		name string
	}
	var segs []seg
	for _, e := range ents {
		switch name := e.Name(); {
		case name == stream:
			segs = append(segs, seg{0, name})
		case strings.HasPrefix(name, stream+"_"):
			if n, err := strconv.Atoi(strings.TrimPrefix(name, stream+"_")); err == nil && n > 0 {
				segs = append(segs, seg{n, name})
			}
		}
	}
	if len(segs) == 0 {
		return nil, fmt.Errorf("salvage: no stream %s under %s", stream, storeDir)
	}
	slices.SortFunc(segs, func(a, b seg) int { return a.n - b.n })
	names := make([]string, len(segs))
	for i, s := range segs {
		names[i] = s.name
	}
	return names, nil
}

// state is a salvage in progress.
type state struct {
	req    Request
	rep    *Report
	out    *writerSet
	folder *chain.Folder
	cps    []storedCheckpoint
	tree   *prefix

	lastSeq     uint64 // last sequence read (saved or refused)
	haveEvents  bool
	lastIndex   uint64     // last event saved
	lastHead    chain.Head // last event saved
	inPrefix    bool       // no gap yet
	pendingLoss *Loss      // a gap waiting for the index of the event after it
	// damage in the block of the last record read and after it: where a
	// gap found next is.
	damage    []located
	blockNo   int // blocks read, the current one included
	lastBlock int // the block of the last record read

	bestCheckpoint []byte

	// Chains other than the legacy one, after a gap: gapped names those
	// that may have lost messages in it (every chain seen before it), each
	// resumed at its first message after it (resumeChain).
	gapped map[string]bool
}

// located is damage in the block-th block read.
type located struct {
	blockfile.Damage
	name  string // segment/block file
	block int
}

func (s *state) block(seg string, b *blockfile.Block) error {
	s.blockNo++
	for _, d := range b.Damage {
		s.rep.Damage = append(s.rep.Damage, seg+"/"+d.String())
		s.damage = append(s.damage, located{Damage: d, name: seg + "/" + d.Block, block: s.blockNo})
	}
	for _, r := range b.Records {
		if r.Seq <= s.lastSeq {
			continue // read twice (overlapping blocks after a crash)
		}
		if r.Seq != s.lastSeq+1 {
			s.gap(r.Seq)
		}
		s.lastSeq = r.Seq
		if s.lastBlock != s.blockNo {
			s.lastBlock = s.blockNo
			s.damage = slices.DeleteFunc(s.damage, func(d located) bool { return d.block < s.blockNo })
		}
		if s.rep.FirstSeq == 0 {
			s.rep.FirstSeq = r.Seq
		}
		if err := s.message(r); err != nil {
			return err
		}
	}
	return nil
}

// gap records that the sequences between the last one read and next are
// lost.
func (s *state) gap(next uint64) {
	var names []string
	for _, d := range s.damage {
		// Damage in the current block before next and after the records
		// read there; in an earlier one, after every record read there.
		cur := d.block == s.blockNo && next != 0
		if cur && d.After < next && (d.Before == 0 || d.Before >= next) || !cur && d.Before == 0 {
			names = append(names, d.name)
		}
	}
	blocks := strings.Join(slices.Compact(names), ", ")
	if blocks == "" {
		blocks = "no damaged block: missing from the store"
	}
	from := s.lastSeq + 1
	if s.lastSeq == 0 && s.rep.FirstSeq == 0 {
		from = 1
	}
	s.closeLoss()
	l := Loss{FromSeq: from, FromIndex: s.nextIndex(), Blocks: blocks}
	if next > 0 {
		l.ToSeq = next - 1
	}
	s.pendingLoss = &l
	s.inPrefix = false
	if s.gapped == nil {
		s.gapped = map[string]bool{}
	}
	for name := range s.folder.Chains() {
		if name != chain.Legacy {
			s.gapped[name] = true
		}
	}
}

func (s *state) nextIndex() uint64 {
	if !s.haveEvents {
		return 0
	}
	return s.lastIndex + 1
}

// closeLoss files a pending loss, its last index known (or not).
func (s *state) closeLoss() {
	if s.pendingLoss != nil {
		s.rep.Lost = append(s.rep.Lost, *s.pendingLoss)
		s.pendingLoss = nil
	}
}

func (s *state) message(r blockfile.Record) error {
	m := chain.Message{Seq: r.Seq, Chain: chain.FromSubject(r.Subject), Data: r.Data}
	var expect uint64 // Nats-Expected-Last-Subject-Sequence, as stored
	if len(r.Header) > 0 {
		if h, err := nats.DecodeHeadersMsg(r.Header); err == nil {
			m.Writer, m.Signature = h.Get(writer.HeaderWriter), h.Get(writer.HeaderSignature)
			m.Imported = h.Get(writer.HeaderImported) != ""
			expect, _ = strconv.ParseUint(h.Get(jetstream.ExpectedLastSubjSeqHeader), 10, 64)
		}
	}
	if s.pendingLoss != nil && m.Chain == chain.Legacy {
		s.resume(m)
	} else if s.pendingLoss != nil || s.gapped[m.Chain] {
		s.resumeChain(m, expect)
	}
	recs, err := s.folder.Fold(m)
	if err != nil {
		var q *chain.Quarantine
		if !errors.As(err, &q) {
			return err
		}
		s.rep.Quarantined = append(s.rep.Quarantined, Refuse{Seq: q.Seq, Writer: q.Writer, Reason: q.Reason.Error()})
		return nil
	}
	if !s.haveEvents {
		s.rep.FirstIndex = recs[0].Pos
	}
	s.haveEvents = true
	s.lastIndex = recs[len(recs)-1].Pos
	s.lastHead = s.folder.Head()
	s.rep.Messages++
	s.rep.Events += len(recs)
	s.rep.LastSeq, s.rep.LastIndex = r.Seq, s.lastIndex
	if s.inPrefix {
		for _, rec := range recs {
			s.tree.append(rec.Raw)
			s.checkpointsAt(s.tree.size)
		}
	}
	if s.out != nil {
		return s.out.message(m, recs)
	}
	return nil
}

// resume starts the chain again at the first message after a gap, anchored
// at the previous hash its first event names, with the writers registered
// before the gap and those verified checkpoints name.
func (s *state) resume(m chain.Message) {
	l := s.pendingLoss
	lines, err := event.SplitBatch(m.Data)
	if err != nil {
		return // refused by the fold below; the loss waits for the next message
	}
	ev, err := event.Decode(lines[0])
	if err != nil {
		return
	}
	l.ToIndex = ev.Index - 1
	if ev.Index == 0 {
		l.ToIndex = 0
	}
	s.closeLoss()
	keys := map[string]ed25519.PublicKey{}
	for id, pub := range s.trustedWriters() {
		if k, err := writer.ParsePublic(pub); err == nil {
			keys[id] = k
		}
	}
	// The revoked set goes on across the gap: a revoked key signs nothing
	// after it either, and is never registered again.
	revoked := maps.Clone(s.folder.Revoked())
	if ev.Index == 0 {
		s.folder = chain.ResumeFolderAt(chain.State{Revoked: revoked})
		return
	}
	st := chain.ResumeFolder(chain.Head{Seq: m.Seq - 1, Index: ev.Index - 1, Hash: ev.Prev, Count: ev.Index}, keys).State()
	st.Revoked = revoked
	s.folder = chain.ResumeFolderAt(st)
	br := Break{Seq: m.Seq, Index: ev.Index, NamesPrev: ev.Prev.String(), HasBefore: s.haveEvents}
	if s.haveEvents {
		br.AfterIndex, br.AfterHash = s.lastHead.Index, s.lastHead.Hash.String()
	}
	s.rep.Breaks = append(s.rep.Breaks, br)
}

// resumeChain is resume for a message on a writer's data chain or a
// control chain after a gap. If the message continues what its chain held
// before the gap, the chain lost nothing; else the chain resumes at the
// previous hash its first event names, its previous message at the
// sequence its writer's Nats-Expected-Last-Subject-Sequence asserted
// (expect, which the writer signed over), and the break is reported. Other
// chains are untouched. The events a chain lost are counted from its
// indexes and added to the positions after the gap; the loss names them
// when this chain is the only one that may have lost any, else the breaks
// say which (Loss.PerChain).
func (s *state) resumeChain(m chain.Message, expect uint64) {
	lines, err := event.SplitBatch(m.Data)
	if err != nil {
		return
	}
	ev, err := event.Decode(lines[0])
	if err != nil {
		return
	}
	st := s.folder.State()
	before, had := st.Chains[m.Chain]
	var lost uint64
	if next := before.NextIndex(); ev.Index > next {
		lost = ev.Index - next
	}
	if l := s.pendingLoss; l != nil {
		alone := len(s.gapped) == 0 || len(s.gapped) == 1 && s.gapped[m.Chain]
		if alone {
			l.ToIndex = l.FromIndex + lost - 1 // below FromIndex: no event
		} else {
			l.PerChain, l.FromIndex, l.ToIndex = true, 0, 0
		}
		s.closeLoss()
	}
	delete(s.gapped, m.Chain)
	if had && lost == 0 && ev.Prev == before.Hash && (expect == 0 || expect == before.Last) {
		return // nothing of this chain was lost
	}
	for id, pub := range s.trustedWriters() {
		if _, ok := st.Writers[id]; !ok {
			if k, err := writer.ParsePublic(pub); err == nil {
				st.Writers = maps.Clone(st.Writers)
				st.Writers[id] = k
			}
		}
	}
	c := chain.ChainHead{Seq: m.Seq - 1, Last: before.Last}
	if expect > 0 {
		c.Last = expect
	}
	if ev.Index > 0 {
		c.Index, c.Hash, c.Count = ev.Index-1, ev.Prev, ev.Index
	}
	if st.Chains == nil {
		st.Chains = map[string]chain.ChainHead{}
	}
	st.Chains[m.Chain] = c
	st.Head.Count += lost
	s.folder = chain.ResumeFolderAt(st)
	br := Break{Seq: m.Seq, Index: ev.Index, NamesPrev: ev.Prev.String(), HasBefore: had, Chain: m.Chain}
	if had {
		br.AfterIndex, br.AfterHash = before.Index, before.Hash.String()
	}
	s.rep.Breaks = append(s.rep.Breaks, br)
}

// trustedWriters is every writer registered before a gap or named by a
// checkpoint that verifies, but none revoked before the gap or named
// revoked by such a checkpoint: an older checkpoint naming a writer live
// does not bring back a key revoked since.
func (s *state) trustedWriters() map[string]string {
	writers := map[string]string{}
	for id, pub := range s.folder.Writers() {
		writers[id] = pub
	}
	for _, cp := range s.cps {
		if cp.sigOK {
			for id, pub := range cp.writers {
				writers[id] = pub
			}
		}
	}
	for id := range s.folder.Revoked() {
		delete(writers, id)
	}
	for _, cp := range s.cps {
		if cp.sigOK {
			for id := range cp.revoked {
				delete(writers, id)
			}
		}
	}
	return writers
}

// finish files what is still open at the end of the stream.
func (s *state) finish() {
	for _, d := range s.damage {
		if s.req.Running && d.block == s.blockNo {
			continue // the record being written
		}
		if d.Before == 0 && (d.block > s.lastBlock || d.After >= s.lastSeq) {
			// Damage after the last record read: the stream's tail is
			// lost, its length unknown (the checkpoints may say more).
			s.gap(0)
			break
		}
	}
	s.closeLoss()
	c := &s.rep.Checkpoints
	c.PrefixSize = s.tree.size
	for _, cp := range s.cps {
		if !cp.sigOK {
			continue
		}
		c.LargestSize = max(c.LargestSize, cp.size)
		if !cp.checked {
			c.BeyondGap++
		}
	}
	ids := slices.Sorted(func(yield func(string) bool) {
		for id := range s.folder.Writers() {
			if !yield(id) {
				return
			}
		}
	})
	s.rep.Writers = ids
}
