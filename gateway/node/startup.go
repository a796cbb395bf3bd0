package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/progress"
	"github.com/keyledger/keyledger/ledger/snapshot"
	"github.com/keyledger/keyledger/ledger/writer"
	"github.com/keyledger/keyledger/projections/compliance"
	"github.com/keyledger/keyledger/projections/resume"
)

// Snapshots tune how an instance snapshots its projections and verifies
// the whole chain in the background.
type Snapshots struct {
	Every    uint64        // take a snapshot after this many events (default 100,000)
	Interval time.Duration // or after this long, if any event came (default 10 minutes)
	Keep     int           // newest snapshots kept (default 3)
	// Time travel starts from the newest snapshot at or before the time
	// asked for, so older ones are thinned, not dropped: the first of each
	// of the Hourly most recent hours (default 24), Daily days (default
	// 14), Weekly weeks (default 8) and Monthly months (default 13) is kept
	// too: at most Keep+Hourly+Daily+Weekly+Monthly snapshots (62 by
	// default) at any history length.
	Hourly, Daily, Weekly, Monthly int
	Off                            bool // neither take nor use snapshots (full replay at start)
	// NotAtShutdown skips the snapshot a clean Close takes of the final
	// state (tests that need a tail to fold after the newest snapshot).
	NotAtShutdown bool
	// VerifyRate caps the background verifier (events/s, default 200,000);
	// negative turns it off.
	VerifyRate int
}

func (s *Snapshots) setDefaults() {
	if s.Every == 0 {
		s.Every = 100_000
	}
	if s.Interval == 0 {
		s.Interval = 10 * time.Minute
	}
	if s.Keep == 0 {
		s.Keep = 3
	}
	if s.Hourly == 0 {
		s.Hourly = 24
	}
	if s.Daily == 0 {
		s.Daily = 14
	}
	if s.Weekly == 0 {
		s.Weekly = 8
	}
	if s.Monthly == 0 {
		s.Monthly = 13
	}
	if s.VerifyRate == 0 {
		s.VerifyRate = 200_000
	}
}

// trees makes an instance's Merkle tree over its tile store.
type trees struct {
	store merkle.TileStore
	cache int            // tiles
	l     *ledger.Ledger // where the live ledger starts
}

// fresh is the tree before any live event: empty, or after removed
// segments continued from their frontier (Ledger.TiledTree, restored and
// checked once already at open).
func (t trees) fresh() *merkle.Tree {
	tree, _ := t.l.TiledTree(t.store, t.cache)
	return tree
}

// maxPendingTiles bounds the completed tiles (8 KiB each) start-up keeps in
// memory before it stores them itself: folding runs faster than the tile
// flusher, and a rebuild under an old snapshot completes a tile every 256
// events.
const maxPendingTiles = 512

// keepFlushed stores the tree's completed tiles once maxPendingTiles of
// them wait, so start-up's memory does not grow with the events it folds.
func keepFlushed(ctx context.Context, tree *merkle.Tree, log *slog.Logger) error {
	if tree.Pending() < maxPendingTiles {
		return nil
	}
	return storeTiles(ctx, tree, log)
}

// storeTiles stores every completed tile, logging those that were missing
// or wrong in the store and so written again.
func storeTiles(ctx context.Context, tree *merkle.Tree, log *slog.Logger) error {
	repaired, err := tree.Flush(ctx)
	if repaired > 0 {
		log.Warn("merkle tiles that were missing or did not match the ledger were written again", "tiles", repaired)
	}
	return err
}

// restored is what start-up resumed from.
type restored struct {
	proj   *resume.Projections
	tree   *merkle.Tree
	resume *ledger.Resume // nil: replay from the first message
	// rebuilt: the tree was rehashed from the events under the snapshot
	// (one taken by an older build, without an edge, or tiles lost). A
	// new snapshot is taken at once so the next start is fast again: with
	// no new events none would be taken, and every restart would rehash.
	rebuilt bool
}

// restore finds the newest snapshot that checks out and still matches the
// ledger, and restores the projections from it. Anything wrong with a
// snapshot (corrupt, truncated, foreign, untrusted, no longer the ledger's
// event, a Merkle root that does not match) skips it with a log line: an
// older one is tried, and with none left the ledger is replayed whole.
// Only this instance's writer key is trusted to have signed a snapshot,
// and not once the newest signed checkpoint names it revoked: a revoked
// key may be a thief's as well, whose snapshot could put it back among the
// writers. The fold from the first event then finds the revocation.
func restore(ctx context.Context, l *ledger.Ledger, store *snapshot.Store, cfg Config, tr trees, newest *merkle.Checkpoint, onTree func(error)) restored {
	fresh := func() restored {
		tree := tr.fresh()
		return restored{proj: resume.New(tree, onTree), tree: tree}
	}
	if store == nil || cfg.Ledger.Writer == nil {
		return fresh()
	}
	if newest != nil {
		if _, gone := newest.Revoked()[cfg.Ledger.Writer.ID()]; gone {
			cfg.Logger.Warn("the newest signed checkpoint names this instance's writer key revoked: no snapshot it signed is trusted; replaying the whole ledger")
			return fresh()
		}
	}
	list, err := store.List(ctx)
	if err != nil {
		cfg.Logger.Warn("snapshots unreadable; replaying the whole ledger", "error", err)
		return fresh()
	}
	own := cfg.Ledger.Writer
	trusted := func(id string) ed25519.PublicKey {
		if id == own.ID() {
			return own.Public()
		}
		return nil
	}
	for _, info := range list {
		r, err := restoreOne(ctx, l, store, info, trusted, cfg.Logger, tr, onTree)
		if err != nil {
			cfg.Logger.Warn("snapshot skipped", "snapshot", info.Name, "reason", err.Error())
			continue
		}
		return r
	}
	return fresh()
}

// ResumeAt is where a fold of the ledger continues after the snapshot
// image im (ledger.ReplayFrom): its last event, every chain's head, its
// writers (which must be well formed) and what it quarantined.
func ResumeAt(im *resume.Image) (ledger.Resume, error) {
	w, err := im.WriterKeys()
	if err != nil {
		return ledger.Resume{}, err
	}
	return ledger.Resume{Head: im.Head, Chains: im.Chains, Writers: w, Revoked: im.Revoked, Quarantined: im.Quarantined,
		QuarantinedChains: im.QuarantinedChains}, nil
}

// loadImage reads one snapshot and checks it: whole, of this ledger,
// signed by a trusted key, the event it covers still the ledger's, and its
// image covering that event and naming well-formed writer keys.
func loadImage(ctx context.Context, l *ledger.Ledger, store *snapshot.Store, info snapshot.Info,
	trusted func(string) ed25519.PublicKey) (snapshot.Header, *resume.Image, error) {
	h, body, err := store.Load(ctx, info.Name, trusted)
	if err != nil {
		return h, nil, err
	}
	want, _ := h.EventHash()
	got, err := l.EventHashAt(ctx, h.Seq, h.Index)
	if err != nil || got != want {
		return h, nil, fmt.Errorf("the event it covers (index %d, stream sequence %d) is not the ledger's: %v", h.Index, h.Seq, err)
	}
	im, err := resume.Decode(body)
	if err != nil {
		return h, nil, err
	}
	if im.Head.Index != h.Index || im.Head.Seq != h.Seq || im.Head.Hash != want || im.Head.Count != h.Count {
		return h, nil, errors.New("its image does not cover the event its header names")
	}
	if _, err := im.WriterKeys(); err != nil {
		return h, nil, err
	}
	return h, im, nil
}

// ImageAt returns the image of the newest snapshot whose events all
// happened at or before at (by its signed header and its image) and that
// checks out against the ledger; nil when none does (fold from the first
// event). A zero at asks for the newest, whatever its time. Snapshots that
// do not check out are skipped with a log line.
func ImageAt(ctx context.Context, l *ledger.Ledger, store *snapshot.Store, at time.Time,
	trusted func(string) ed25519.PublicKey, log *slog.Logger) (*resume.Image, error) {
	list, err := store.List(ctx)
	if !at.IsZero() && err == nil {
		list, err = store.AtOrBefore(ctx, at)
	}
	if err != nil {
		return nil, err
	}
	for _, info := range list {
		h, im, err := loadImage(ctx, l, store, info, trusted)
		if err != nil {
			log.Warn("snapshot skipped", "snapshot", info.Name, "reason", err.Error())
			continue
		}
		if !at.IsZero() && (h.EventTime.After(at) || im.Latest.IsZero() || im.Latest.After(at)) {
			continue // holds later events, or (older snapshots) does not say
		}
		return im, nil
	}
	return nil, nil
}

func restoreOne(ctx context.Context, l *ledger.Ledger, store *snapshot.Store, info snapshot.Info,
	trusted func(string) ed25519.PublicKey, log *slog.Logger, tr trees, onTree func(error)) (restored, error) {
	_, im, err := loadImage(ctx, l, store, info, trusted)
	if err != nil {
		return restored{}, err
	}
	at, err := ResumeAt(im)
	if err != nil {
		return restored{}, err
	}
	started := time.Now()
	tree, from, err := restoreTree(ctx, l, im, tr, log)
	if err != nil {
		return restored{}, err
	}
	proj, err := resume.Restore(im, tree, onTree)
	if err != nil {
		return restored{}, err
	}
	log.Info("projections restored from snapshot", "snapshot", info.Name, "events", im.Head.Count,
		"index", im.Head.Index, "merkle_from", from, "merkle_took", time.Since(started).Round(time.Millisecond))
	return restored{proj: proj, tree: tree, resume: &at,
		rebuilt: from == "events"}, nil
}

// restoreTree brings the Merkle tree to the image's events. From the
// image's frontier and the stored tiles when it has one: no event is read,
// whatever the history's length; the root must be the image's, and the
// first and last stored tile of each level must be there and check out
// against the edge (a deleted or foreign tile bucket fails here). Else, or
// if that fails, by hashing every event under the snapshot, storing the
// tiles as they complete. from names the path taken ("frontier" or
// "events").
func restoreTree(ctx context.Context, l *ledger.Ledger, im *resume.Image, tr trees, log *slog.Logger) (*merkle.Tree, string, error) {
	if f, ok := im.Merkle.Frontier(); ok {
		tree, err := merkle.Restore(f, tr.store, tr.cache)
		if err == nil {
			err = resume.CheckTree(im, tree)
		}
		if err == nil {
			err = tree.CheckStored(ctx)
		}
		if err == nil {
			return tree, "frontier", nil
		}
		log.Warn("merkle tree not restored from the snapshot's frontier; rebuilding it from the events under the snapshot",
			"index", im.Head.Index, "reason", err.Error())
	} else {
		log.Info("snapshot has no merkle frontier (taken by an older build); rebuilding the tree from the events under it",
			"index", im.Head.Index)
	}
	tree := tr.fresh()
	err := resume.RestoreTree(im, tree, func(fn func([]byte) error) error {
		return l.Leaves(ctx, im.Head.Seq, im.Quarantined, func(raw []byte) error {
			if err := fn(raw); err != nil {
				return err
			}
			return keepFlushed(ctx, tree, log)
		})
	})
	return tree, "events", err
}

// replayTail folds what the ledger holds after the snapshot (or all of it),
// linking every message, with progress in the log.
func replayTail(ctx context.Context, l *ledger.Ledger, r restored, fold func([]event.Record), log *slog.Logger) (chain.Head, error) {
	last, err := l.LastStreamSeq(ctx)
	if err != nil {
		return chain.Head{}, err
	}
	from := uint64(0)
	if r.resume != nil {
		from = r.resume.Head.Seq
	}
	meter := progress.New("start-up replay", from, last, progress.Options{Logger: log})
	each := func(rec event.Record) error {
		fold([]event.Record{rec})
		meter.Add(rec.Seq, 1)
		return keepFlushed(ctx, r.tree, log)
	}
	var head chain.Head
	if r.resume != nil {
		head, err = l.ReplayFrom(ctx, *r.resume, each)
	} else {
		head, err = l.Replay(ctx, chain.Head{}, each)
	}
	meter.Done()
	return head, err
}

// snapshotter takes a snapshot every Every events or Interval, off the
// request path: the fold only counts; capture, encoding and storing run
// here.
type snapshotter struct {
	cfg     Snapshots
	proj    *resume.Projections
	l       *ledger.Ledger
	store   *snapshot.Store
	tree    *merkle.Tree // flushed before each snapshot: its edge relies on the stored tiles
	key     *writer.Key
	log     *slog.Logger
	pending atomic.Uint64 // events folded since the last snapshot
	kick    chan struct{}
}

// soon asks for a snapshot now, whether or not events came.
func (s *snapshotter) soon() {
	if s == nil {
		return
	}
	s.pending.Add(1) // take skips nothing; an equal snapshot replaces its namesake
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// folded is called by the fold with how many events it folded.
func (s *snapshotter) folded(n int) {
	if s == nil {
		return
	}
	if s.pending.Add(uint64(n)) >= s.cfg.Every {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

func (s *snapshotter) run(ctx context.Context) {
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.kick:
		}
		if s.pending.Load() == 0 {
			continue
		}
		if err := s.take(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("snapshot not taken", "error", err)
		}
	}
}

// take captures, signs and stores one snapshot, then thins old ones.
func (s *snapshotter) take(ctx context.Context) error {
	n := s.pending.Swap(0)
	im, err := s.proj.Capture(s.l.QuarantinedChains)
	if err != nil {
		s.pending.Add(n)
		return err
	}
	if im.Head.Empty() {
		return nil
	}
	started := time.Now()
	// Every full tile under the captured edge must be durable before a
	// snapshot that restores from it is: stored tiles first, then the
	// snapshot. A crash between the two leaves the older snapshot in force.
	if err := storeTiles(ctx, s.tree, s.log); err != nil {
		s.pending.Add(n)
		return fmt.Errorf("storing the merkle tiles a snapshot relies on: %w", err)
	}
	body, err := im.Encode()
	if err != nil {
		return err
	}
	h := snapshot.Header{Index: im.Head.Index, Seq: im.Head.Seq, Hash: im.Head.Hash.String(), Count: im.Head.Count,
		Taken: time.Now().UTC(), EventTime: im.Latest}
	if err := s.store.Put(ctx, h, body, s.key); err != nil {
		return err
	}
	s.log.Info("snapshot taken", "index", im.Head.Index, "events", im.Head.Count, "bytes", len(body),
		"took", time.Since(started).Round(time.Millisecond))
	return s.store.Thin(ctx, snapshot.Retention{Recent: s.cfg.Keep, Hourly: s.cfg.Hourly, Daily: s.cfg.Daily, Weekly: s.cfg.Weekly, Monthly: s.cfg.Monthly})
}

// verifier walks the whole chain in the background (rate-limited, with
// progress in the log) and keeps the outcome for the compliance report.
// A message the ledger cannot produce (a damaged block on disk) makes the
// instance not ready: the next start would refuse (rule 13).
type verifier struct {
	mu     sync.Mutex
	result *compliance.Integrity
	// diagnose names what a damaged ledger's files still hold and what is
	// lost ("" when it cannot tell, e.g. an external deployment).
	diagnose func(ctx context.Context) string
	damage   string // why the ledger is damaged; "" while it is not known to be
}

// Damage is why the background walk found the ledger damaged, or "".
func (v *verifier) Damage() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.damage
}

// Integrity is the outcome so far: nil before the first walk ends.
func (v *verifier) Integrity() *compliance.Integrity {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.result == nil {
		return nil
	}
	c := *v.result
	return &c
}

func (v *verifier) run(ctx context.Context, l *ledger.Ledger, rate int, log *slog.Logger) {
	last, err := l.LastStreamSeq(ctx)
	if err != nil {
		return
	}
	meter := progress.New("background chain verification", 0, last, progress.Options{Logger: log, Every: 30 * time.Second})
	report, err := l.AuditAgainst(ctx, nil, paced(ctx, rate, meter)) // from where the live ledger starts
	if ctx.Err() != nil {
		return
	}
	meter.Done()
	in := &compliance.Integrity{ChainVerified: err == nil && len(report.Quarantined) == 0, Events: report.Head.Count,
		Head: report.Head.Hash.String(), VerifiedAt: time.Now().UTC()}
	// Quarantined messages reach the report through the ledger's own count
	// (Integrity.Quarantined), which every reader keeps; here they are only
	// the alarm.
	if err != nil {
		in.Problem = "the chain could not be read: " + err.Error()
	}
	var damage string
	if unreadable := (*ledger.UnreadableError)(nil); errors.As(err, &unreadable) {
		damage = "the ledger is damaged: " + unreadable.Error()
		if v.diagnose != nil {
			if d := v.diagnose(ctx); d != "" {
				damage += "; its block files: " + d
			}
		}
	}
	v.mu.Lock()
	v.result = in
	v.damage = damage
	v.mu.Unlock()
	if in.Problem != "" || len(report.Quarantined) > 0 {
		problem := in.Problem
		if len(report.Quarantined) > 0 {
			problem = fmt.Sprintf("%d message(s) quarantined; first: %v", len(report.Quarantined), report.Quarantined[0])
		}
		if damage != "" {
			problem = damage + ". The instance is not ready; the next start will refuse. Save what the data directory " +
				"holds with `keyledger audit export --salvage` (server stopped), then restore from a backup"
		}
		log.Error("ALARM: background chain verification failed", "problem", problem)
		return
	}
	log.Info("background chain verification passed", "events", in.Events, "head", in.Head)
}

// paced counts a walk's messages on meter and holds the walk to no more
// than rate events/s.
func paced(ctx context.Context, rate int, meter *progress.Meter) func(chain.Message) error {
	began := time.Now()
	var events uint64
	return func(m chain.Message) error {
		n := uint64(bytes.Count(m.Data, []byte{'\n'}))
		events += n
		meter.Add(m.Seq, n)
		if ahead := time.Duration(float64(events)/float64(rate)*float64(time.Second)) - time.Since(began); ahead > 10*time.Millisecond {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(ahead):
			}
		}
		return nil
	}
}
