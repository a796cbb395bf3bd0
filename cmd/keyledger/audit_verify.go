package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/backend"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/checkpoint"
	"github.com/keyledger/keyledger/ledger/material"
	"github.com/keyledger/keyledger/ledger/offline"
	"github.com/keyledger/keyledger/ledger/segment"
	"github.com/keyledger/keyledger/ledger/verify"
	"github.com/keyledger/keyledger/projections/keystate"
)

// auditVerify walks the whole ledger and checks every link (verify.Live),
// or checks an offline export against its signed checkpoint
// (offline.VerifyDir), or archives and an export as one ledger
// (segment.VerifyJoined).
func auditVerify(args []string, stdout, stderr io.Writer) int {
	fs, bf := ledgerFlagSet("audit verify", stderr)
	offlineDir := fs.String("offline", "", "verify an export directory (events.jsonl + checkpoint) instead of a ledger")
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
	if *offlineDir != "" && len(archives) > 0 {
		return verifyJoined(archives, *offlineDir, *pubkey, stdout, stderr)
	}
	if *offlineDir != "" {
		return verifyOffline(*offlineDir, *pubkey, stdout, stderr)
	}
	l, b, done, ok := openLedgerForAudit(bf, stderr)
	if !ok {
		return 1
	}
	defer done()
	ctx := context.Background()
	keyFile := *pubkey
	if keyFile == "" && bf.natsURL == "" && fileExists(bf.checkpointVerifierFile()) {
		keyFile = bf.checkpointVerifierFile()
	}
	req := verify.Request{Ledger: l}
	if keyFile != "" {
		data, err := os.ReadFile(keyFile)
		if err != nil {
			fmt.Fprintf(stderr, "keyledger: --pubkey: %v\n", err)
			return 1
		}
		req.Verifier = strings.TrimSpace(string(data))
	}
	switch cps, err := b.ReadCheckpoints(ctx, bf.stream); {
	case err == nil:
		req.Checkpoints = cps
	case !errors.Is(err, checkpoint.ErrNone):
		fmt.Fprintf(stderr, "keyledger: reading checkpoints: %v\n", err)
		return 1
	}
	last, _ := l.LastStreamSeq(ctx)
	meter := newMeter("audit verify", last, stderr)
	req.Progress = meter.Add
	res, err := verify.Live(ctx, req)
	meter.Done()
	var failed *verify.FailedError
	switch {
	case errors.As(err, &failed):
		fmt.Fprintf(stdout, "FAILED: %v\n", err)
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	code := printAudit(stdout, res.Report, res.Took)
	if first := l.FirstIndex(); first > 0 {
		fmt.Fprintf(stdout, "the live ledger starts at event %d (stream sequence %d), after removed segments recorded by a SegmentRemoved event\n",
			first, l.FirstSeq())
	}
	fmt.Fprintln(stdout, checkpointNote(res, req.Verifier))
	if bf.natsURL == "" && l.FirstIndex() == 0 {
		if mcode := verifyMaterials(ctx, l, b, bf.materials(b), stdout, stderr); code == 0 {
			code = mcode
		}
	}
	return code
}

// verifyMaterials reads every live key material of a stopped data
// directory from both stored copies, writing nothing (verify.VerifyMaterials).
func verifyMaterials(ctx context.Context, l *ledger.Ledger, b *backend.Backend, cfg material.Config, stdout, stderr io.Writer) int {
	cfg.ReadOnly = true
	mats, err := b.OpenMaterials(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: key material: %v\n", err)
		return 1
	}
	if !mats.Present() {
		fmt.Fprintln(stdout, "key material: no material store in this data directory: not checked")
		return 0
	}
	res, err := verify.VerifyMaterials(ctx, l, keystate.New(), mats, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: key material: %v\n", err)
		return 1
	}
	for _, id := range slices.Sorted(maps.Keys(res.Repaired)) {
		fmt.Fprintf(stdout, "WARNING: key %s, material %s: one stored copy is damaged or missing (%s); serve rewrites it from the other at its next start\n",
			res.Owner[id], id, strings.Join(res.Repaired[id], ", "))
	}
	for _, u := range res.Unreadable {
		fmt.Fprintf(stdout, "FAILED: key %s: %v\n", res.Owner[u.ID], u)
	}
	if len(res.Unreadable) > 0 {
		return 1
	}
	fmt.Fprintf(stdout, "key material: %d live material(s) readable in a stored copy, matching the ledger's commitments\n", res.Materials)
	return 0
}

// checkpointNote says what audit verify checked the ledger's tail against.
func checkpointNote(res verify.Result, vkey string) string {
	forged := ""
	if res.Skipped > 0 {
		forged = fmt.Sprintf(" (%d newer stored checkpoint(s) do not verify with that key: another instance's key, or forged)", res.Skipped)
	}
	switch cp := res.Checkpoint; {
	case cp == nil:
		return "checkpoint: none stored" + forged + ": a truncated tail cannot be detected"
	case vkey == "":
		return fmt.Sprintf("checkpoint: the ledger extends the newest stored checkpoint (size %d); its signature was not checked (no --pubkey)", cp.Size)
	default:
		return fmt.Sprintf("checkpoint: the ledger extends the newest signed checkpoint (size %d, verified with %s)%s", cp.Size, keyName(vkey), forged)
	}
}

// exitQuarantined is audit verify's status when the ledger holds messages
// that folding refused (forged, replayed, garbage, or changed on disk).
const exitQuarantined = 3

// printAudit reports a verified ledger: its head, writers and revoked
// writers, and every quarantined message.
func printAudit(stdout io.Writer, r chain.Report, took time.Duration) int {
	head := r.Head
	printRevoked(stdout, r.Revoked)
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
	for _, id := range slices.Sorted(maps.Keys(r.Writers)) {
		fmt.Fprintf(stdout, "writer: %s (public key %s)\n", id, r.Writers[id])
	}
	printChains(stdout, r.Chains)
	return 0
}

// printRevoked names every revoked writer, who revoked it and where: its
// messages after that event are quarantined, those before are history.
func printRevoked(stdout io.Writer, revoked map[string]chain.Revocation) {
	for _, id := range slices.Sorted(maps.Keys(revoked)) {
		r := revoked[id]
		fmt.Fprintf(stdout, "revoked writer: %s (public key %s) by writer %s at event %d (chain %q index %d, stream sequence %d)\n",
			id, r.PublicKey, r.By, r.Pos, r.Chain, r.Index, r.Seq)
	}
}

// printChains says what each chain holds: who wrote what (a writer's data
// chain), key-state changes (the control chains), a ledger from before
// chains (the legacy chain).
func printChains(stdout io.Writer, chains map[string]chain.ChainHead) {
	names := slices.Sorted(maps.Keys(chains))
	var control, controlEvents uint64
	for _, name := range names {
		c := chains[name]
		switch id, data := chain.DataWriter(name); {
		case data:
			fmt.Fprintf(stdout, "chain %s: %d events written by writer %s\n", name, c.Count, id)
		case name == chain.Legacy:
			fmt.Fprintf(stdout, "legacy chain (from before chains): %d events\n", c.Count)
		default:
			control++
			controlEvents += c.Count
		}
	}
	if control > 0 {
		fmt.Fprintf(stdout, "control chains: %d holding %d key-state changes and fences\n", control, controlEvents)
	}
}

// verifyOffline checks an export directory with nothing but the checkpoint
// verifier key (offline.VerifyDir) and prints the outcome.
func verifyOffline(dir, pubkeyFile string, stdout, stderr io.Writer) int {
	vkey, err := os.ReadFile(pubkeyFile)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: --pubkey: %v\n", err)
		return 2
	}
	res, err := offline.VerifyDir(dir, string(vkey))
	var unreadable *fs.PathError
	var sigErr *offline.SignatureError
	switch {
	case errors.As(err, &unreadable):
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 2
	case errors.As(err, &sigErr):
		fmt.Fprintf(stdout, "FAILED: the checkpoint's signature does not verify with %s: %v\n", pubkeyFile, sigErr.Err)
		return 1
	case err != nil:
		fmt.Fprintf(stdout, "FAILED: %v\n", err)
		return 1
	}
	writers := fmt.Sprintf("writer signatures: not checked (no %s: an export from before writers signed)\n", offline.SignaturesFile)
	if wr := res.Writers; wr != nil {
		ids := make([]string, 0, len(wr.Writers))
		for id := range wr.Writers {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		writers = fmt.Sprintf("writer signatures: %d messages signed by registered writers (%s); the checkpoint names %d\n",
			wr.Messages, strings.Join(ids, ", "), len(res.Checkpoint.Writers()))
		var b strings.Builder
		printRevoked(&b, wr.Revoked)
		writers += b.String()
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
