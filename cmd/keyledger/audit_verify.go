package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/backend"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/checkpoint"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/offline"
	"github.com/keyledger/keyledger/ledger/progress"
	"github.com/keyledger/keyledger/ledger/segment"
)

// auditVerify walks the whole ledger and checks every link, or checks an
// offline export against its signed checkpoint.
func auditVerify(args []string, stdout, stderr io.Writer) int {
	fs, bf := ledgerFlagSet("audit verify", stderr)
	offline := fs.String("offline", "", "verify an export directory (events.jsonl + checkpoint) instead of a ledger")
	pubkey := fs.String("pubkey", "", "the checkpoint verifier key file (note vkey); required with --offline, "+
		"default <data-dir>/checkpoint.key.pub on a data directory")
	var archives []string
	fs.Func("archive", "with --offline: an archive (audit archive) the export continues; repeat, oldest first", func(v string) error {
		archives = append(archives, v)
		return nil
	})
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	if *offline != "" && len(archives) > 0 {
		return verifyJoined(archives, *offline, *pubkey, stdout, stderr)
	}
	if *offline != "" {
		return verifyOffline(*offline, *pubkey, stdout, stderr)
	}
	l, b, done, ok := openLedgerForAudit(bf, stderr)
	if !ok {
		return 1
	}
	defer done()
	ctx := context.Background()
	// The newest checkpoint first: the ledger must extend it, and one
	// stored during the walk may cover events the walk does not reach.
	cp, cpNote, err := newestCheckpoint(ctx, b, bf, *pubkey)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	start := time.Now()
	last, _ := l.LastStreamSeq(ctx)
	meter := newMeter("audit verify", last, stderr)
	// After removed segments the walk starts at the ledger's base (checked
	// against its SegmentRemoved event when the ledger was opened); the
	// archives verify what came before (--offline --archive).
	report, err := l.AuditAgainst(ctx, cp, counted(meter))
	meter.Done()
	took := time.Since(start)
	var ue *ledger.UnreadableError
	var mismatch *checkpoint.MismatchError
	var missing *ledger.MissingSegmentError
	var badBase *ledger.BaseError
	switch {
	case errors.As(err, &ue), errors.As(err, &mismatch), errors.As(err, &missing), errors.As(err, &badBase):
		fmt.Fprintf(stdout, "FAILED: %v\n", err)
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	code := printAudit(stdout, report, took)
	if first := l.FirstIndex(); first > 0 {
		fmt.Fprintf(stdout, "the live ledger starts at event %d (stream sequence %d), after removed segments recorded by a SegmentRemoved event\n",
			first, l.FirstSeq())
	}
	fmt.Fprintln(stdout, cpNote)
	return code
}

// newestCheckpoint finds the newest stored checkpoint the ledger must
// extend, verified with the verifier key when one is at hand, and a line
// saying what was checked.
func newestCheckpoint(ctx context.Context, b *backend.Backend, bf *backendFlags, pubkeyFile string) (*merkle.Checkpoint, string, error) {
	if pubkeyFile == "" && bf.natsURL == "" {
		if p := bf.checkpointVerifierFile(); fileExists(p) {
			pubkeyFile = p
		}
	}
	vkey := ""
	if pubkeyFile != "" {
		data, err := os.ReadFile(pubkeyFile)
		if err != nil {
			return nil, "", fmt.Errorf("--pubkey: %w", err)
		}
		vkey = strings.TrimSpace(string(data))
	}
	cps, err := b.ReadCheckpoints(ctx, bf.stream)
	var cp merkle.Checkpoint
	skipped := 0
	if err == nil {
		cp, skipped, err = cps.Newest(ctx, vkey)
	}
	forged := ""
	if skipped > 0 {
		forged = fmt.Sprintf(" (%d newer stored checkpoint(s) do not verify with that key: another instance's key, or forged)", skipped)
	}
	switch {
	case errors.Is(err, checkpoint.ErrNone):
		return nil, "checkpoint: none stored" + forged + ": a truncated tail cannot be detected", nil
	case err != nil:
		return nil, "", fmt.Errorf("reading checkpoints: %w", err)
	case vkey == "":
		return &cp, fmt.Sprintf("checkpoint: the ledger extends the newest stored checkpoint (size %d); its signature was not checked (no --pubkey)", cp.Size), nil
	}
	return &cp, fmt.Sprintf("checkpoint: the ledger extends the newest signed checkpoint (size %d, verified with %s)%s",
		cp.Size, keyName(vkey), forged), nil
}

// counted counts each message's events on a progress meter as a walk
// passes it.
func counted(meter *progress.Meter) func(chain.Message) error {
	return func(m chain.Message) error {
		meter.Add(m.Seq, uint64(bytes.Count(m.Data, []byte{'\n'})))
		return nil
	}
}

// newMeter shows progress over a walk of the stream up to sequence last:
// a bar when stderr is a terminal, log lines otherwise.
func newMeter(label string, last uint64, stderr io.Writer) *progress.Meter {
	o := progress.Options{Logger: slog.New(slog.NewTextHandler(stderr, nil))}
	if f, ok := stderr.(*os.File); ok && progress.IsTerminal(f) {
		o.Terminal = f
	}
	return progress.New(label, 0, last, o)
}

// exitQuarantined is audit verify's status when the ledger holds messages
// that folding refused (forged, replayed, garbage, or changed on disk).
const exitQuarantined = 3

// printAudit reports a verified ledger: its head and writers, and every
// quarantined message.
func printAudit(stdout io.Writer, r chain.Report, took time.Duration) int {
	head := r.Head
	if n := len(r.Quarantined); n > 0 {
		fmt.Fprintf(stdout, "FAILED: %d message(s) quarantined: not applied by keyledger; the chain continues from the last valid event\n", n)
		for i, q := range r.Quarantined {
			if i == 20 {
				fmt.Fprintf(stdout, "  … and %d more\n", n-i)
				break
			}
			fmt.Fprintf(stdout, "  stream sequence %d (writer %q): %v\n", q.Seq, q.Writer, q.Reason)
		}
		q := r.Quarantined[0]
		fmt.Fprintf(stdout, "first quarantined: stream sequence %d: %v\n%d valid events; head: %s (index %d, stream sequence %d)\n",
			q.Seq, q.Reason, head.Count, head.Hash, head.Index, head.Seq)
		return exitQuarantined
	}
	if head.Empty() {
		fmt.Fprintln(stdout, "OK: 0 events verified (the ledger is empty)")
		return 0
	}
	rate := float64(head.Count) / took.Seconds()
	fmt.Fprintf(stdout, "OK: %d events verified in %s (%.0f events/s)\nhead: %s (index %d, stream sequence %d)\n",
		head.Count, took.Round(time.Millisecond), rate, head.Hash, head.Index, head.Seq)
	for id, pub := range r.Writers {
		fmt.Fprintf(stdout, "writer: %s (public key %s)\n", id, pub)
	}
	return 0
}

// verifyOffline checks an export directory with nothing but the checkpoint
// verifier key (see package offline) and prints the outcome.
func verifyOffline(dir, pubkeyFile string, stdout, stderr io.Writer) int {
	vkey, err := os.ReadFile(pubkeyFile)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: --pubkey: %v\n", err)
		return 2
	}
	signed, err := os.ReadFile(filepath.Join(dir, offline.CheckpointFile))
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 2
	}
	events, err := os.ReadFile(filepath.Join(dir, offline.EventsFile))
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 2
	}
	res, err := offline.Verify(events, signed, string(vkey))
	var sigErr *offline.SignatureError
	switch {
	case errors.As(err, &sigErr):
		fmt.Fprintf(stdout, "FAILED: the checkpoint's signature does not verify with %s: %v\n", pubkeyFile, sigErr.Err)
		return 1
	case err != nil:
		fmt.Fprintf(stdout, "FAILED: %v\n", err)
		return 1
	}
	writers, code := verifyOfflineWriters(dir, events, res.Checkpoint, stdout, stderr)
	if code != 0 {
		return code
	}
	extra := ""
	if n := res.Uncovered(); n > 0 {
		extra = fmt.Sprintf(" (%d later events are chain-linked but not yet covered by a checkpoint)", n)
	}
	cp := res.Checkpoint
	fmt.Fprintf(stdout, "OK: %d events; checkpoint %q of size %d verified with %s%s\nroot: %s\n%s",
		res.Events, cp.Origin, cp.Size, keyName(string(vkey)), extra, cp.Root, writers)
	return 0
}

// verifyOfflineWriters checks the export's writer signatures (if it has a
// signatures file) against the writers its own ledger registers, and that
// those include every writer the checkpoint names. It returns the line to
// print on success, or a non-zero exit code having printed why.
func verifyOfflineWriters(dir string, events []byte, cp merkle.Checkpoint, stdout, stderr io.Writer) (string, int) {
	sigs, err := os.ReadFile(filepath.Join(dir, offline.SignaturesFile))
	if errors.Is(err, os.ErrNotExist) {
		if len(cp.Writers()) > 0 {
			fmt.Fprintf(stdout, "FAILED: the checkpoint names ledger writers but the export has no %s\n", offline.SignaturesFile)
			return "", 1
		}
		return fmt.Sprintf("writer signatures: not checked (no %s: an export from before writers signed)\n", offline.SignaturesFile), 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return "", 2
	}
	wr, err := offline.VerifyWriters(events, sigs)
	if err == nil {
		err = offline.CheckNamedWriters(cp.Writers(), wr.Writers)
	}
	if err != nil {
		fmt.Fprintf(stdout, "FAILED: writer signatures: %v\n", err)
		return "", 1
	}
	ids := make([]string, 0, len(wr.Writers))
	for id := range wr.Writers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return fmt.Sprintf("writer signatures: %d messages signed by registered writers (%s); the checkpoint names %d\n",
		wr.Messages, strings.Join(ids, ", "), len(cp.Writers())), 0
}

// keyName is the name in a note verifier key ("name+hash+key").
func keyName(vkey string) string {
	name, _, _ := strings.Cut(strings.TrimSpace(vkey), "+")
	return name
}

// verifyJoined checks archives and a later export (package segment) with
// nothing but the checkpoint verifier key: each archive verifies and
// continues the one before, and the export continues the last into the
// tree its signed checkpoint names.
func verifyJoined(archives []string, dir, pubkeyFile string, stdout, stderr io.Writer) int {
	raw, err := os.ReadFile(pubkeyFile)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: --pubkey: %v\n", err)
		return 2
	}
	vkey := strings.TrimSpace(string(raw))
	as, err := segment.OpenAll(archives, vkey)
	if err != nil {
		fmt.Fprintf(stdout, "FAILED: %v\n", err)
		return 1
	}
	j, err := segment.VerifyJoined(as, dir, vkey)
	if err != nil {
		fmt.Fprintf(stdout, "FAILED: %v\n", err)
		return 1
	}
	for _, a := range as {
		fmt.Fprintf(stdout, "archive %s: events %d–%d, signed checkpoint of size %d\n", a.Dir,
			a.Manifest.Base.FirstIndex, a.Manifest.Next.FirstIndex-1, a.Checkpoint.Size)
	}
	fmt.Fprintf(stdout, "OK: %d archived and %d live events join into one ledger; checkpoint %q of size %d verified with %s\nroot: %s\n",
		j.Archived, j.Live, j.Checkpoint.Origin, j.Checkpoint.Size, keyName(vkey), j.Checkpoint.Root)
	return 0
}
