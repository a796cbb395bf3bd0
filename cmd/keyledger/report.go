package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/keyledger/keyledger/gateway/auditclient"
	"github.com/keyledger/keyledger/gateway/node"
	"github.com/keyledger/keyledger/gateway/sigv4"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/backend"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/checkpoint"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/projections/compliance"
	"github.com/keyledger/keyledger/projections/keystate"
	"github.com/keyledger/keyledger/projections/resume"
)

// reportCompliance writes the compliance report: from the newest snapshot
// of the projections and the events after it (a cost that follows the
// tail, not the history), or with --full from the whole ledger, which also
// verifies the whole chain and every signed checkpoint. With --url it asks
// a running deployment, which answers from its live aggregates.
func reportCompliance(args []string, stdout, stderr io.Writer) int {
	fs, bf := ledgerFlagSet("report compliance", stderr)
	format := fs.String("format", "json", "json, csv or html")
	out := fs.String("out", "", "write to this file instead of stdout")
	pubkey := fs.String("pubkey", "", "checkpoint verifier key file (default <data-dir>/checkpoint.key.pub)")
	region := fs.String("region", "us-east-1", "region in ARNs")
	maxAge := fs.Int("max-age-days", 365, "cryptoperiod: the oldest current key material allowed")
	unused := fs.Int("unused-days", 90, "flag enabled keys unused this long")
	endpoint := fs.String("url", "", "ask this running deployment (e.g. https://kms.example:8443) for the report from its live aggregates,\n"+
		"signed with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (keyledger:ReadReports); no data directory or NATS needed")
	scope := fs.String("scope", "account", "with --url: account (the caller's) or all (needs keyledger:ReadAllAccounts)")
	caBundle := fs.String("ca-bundle", os.Getenv("AWS_CA_BUNDLE"), "with --url: PEM file of CAs to trust for https")
	full := fs.Bool("full", false, "fold the whole ledger, verifying the chain and every signed checkpoint (time grows with the ledger);\nby default the report answers from the newest snapshot and the events after it")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	if *format != "json" && *format != "csv" && *format != "html" {
		fmt.Fprintln(stderr, "keyledger report compliance: --format must be json, csv or html")
		return 2
	}
	if *endpoint != "" {
		return reportFromDeployment(*endpoint, *region, *caBundle, *format, *scope, *out, stdout, stderr)
	}
	l, b, done, ok := openLedgerForAudit(bf, stderr)
	if !ok {
		return 1
	}
	defer done()
	ctx := context.Background()
	opts := compliance.Options{Now: time.Now(), Region: *region, MaxAgeDays: *maxAge, UnusedDays: *unused}
	keyFile := *pubkey
	if keyFile == "" {
		keyFile = bf.checkpointVerifierFile()
	}
	if err := checkBase(ctx, l, b, bf, keyFile); err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	var builder *compliance.Builder
	if !*full {
		if im := snapshotImage(ctx, l, b, bf, keyFile, time.Time{}, stderr); im != nil {
			builder = reportFromSnapshot(ctx, l, im, opts)
		}
	}
	if builder == nil {
		builder = reportFromLedger(ctx, l, b, bf, keyFile, opts)
	}
	rep := builder.Report()
	w := stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintf(stderr, "keyledger: %v\n", err)
			return 1
		}
		defer f.Close()
		w = f
	}
	var err error
	switch *format {
	case "csv":
		err = rep.CSV(w)
	case "html":
		err = rep.HTML(w)
	default:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	}
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	return 0
}

// reportFromDeployment fetches the report a running deployment makes from
// its live aggregates: the fast way while a server owns the ledger (the
// data directory is locked, and folding its tail costs what the tail does).
func reportFromDeployment(endpoint, region, caBundle, format, scope, out string, stdout, stderr io.Writer) int {
	client := &auditclient.Client{Endpoint: endpoint, Region: region,
		Credentials: sigv4.Credentials{AccessKeyID: os.Getenv("AWS_ACCESS_KEY_ID"), Secret: os.Getenv("AWS_SECRET_ACCESS_KEY")}}
	var err error
	if client.HTTP, err = httpClient(caBundle); err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 2
	}
	body, err := client.ComplianceReport(context.Background(), format, scope)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	if out != "" {
		err = os.WriteFile(out, body, 0o644)
	} else {
		_, err = stdout.Write(body)
	}
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	return 0
}

// reportFromSnapshot continues the snapshot's key state and compliance
// aggregates with the events after it (authenticated and linked to the
// snapshot's event). The chain before the snapshot and the signed
// checkpoints are not re-read: the report says so, as a live instance's
// does while its background verifier runs.
func reportFromSnapshot(ctx context.Context, l *ledger.Ledger, im *resume.Image, opts compliance.Options) *compliance.Builder {
	state, agg := keystate.Restore(im.Keys), compliance.RestoreAggregates(im.Compliance)
	resumeAt, _ := node.ResumeAt(im) // writers checked with the snapshot
	head, err := l.ReplayFrom(ctx, resumeAt, func(r event.Record) error {
		recs := []event.Record{r}
		state.Apply(recs)
		agg.Apply(recs)
		return nil
	})
	integrity := &compliance.Integrity{Events: head.Count, Head: head.Hash.String(),
		Pending: fmt.Sprintf("answered from the snapshot of the first %d events and the %d events after it, which linked to it; "+
			"keyledger audit verify (or report compliance --full) verifies the whole chain and the signed checkpoints",
			im.Head.Count, head.Count-im.Head.Count)}
	if err != nil {
		integrity.Problem = err.Error()
	}
	integrity.Quarantined, integrity.QuarantineReasons = l.Quarantined(), l.QuarantineReasons()
	b := compliance.NewLiveBuilder(opts, state, agg)
	b.SetIntegrity(integrity)
	return b
}

// reportFromLedger folds the whole ledger, linking every event, and
// verifies every signed checkpoint against the Merkle tree it rebuilds.
func reportFromLedger(ctx context.Context, l *ledger.Ledger, b *backend.Backend, bf *backendFlags, keyFile string, opts compliance.Options) *compliance.Builder {
	var tree merkle.Tree
	builder := compliance.NewBuilder(opts)
	integrity := &compliance.Integrity{}
	head, err := l.Replay(ctx, chain.Head{}, func(r event.Record) error {
		builder.Add(r)
		return tree.Append(r.Raw)
	})
	switch first := l.FirstIndex(); {
	case err != nil:
		integrity.Problem = err.Error()
	case first > 0:
		integrity.Problem = fmt.Sprintf("the live ledger starts at event %d after removed (archived) segments: this report covers the events from there on", first)
	default:
		integrity.ChainVerified, integrity.Events, integrity.Head = true, head.Count, head.Hash.String()
	}
	integrity.Quarantined, integrity.QuarantineReasons = l.Quarantined(), l.QuarantineReasons()
	if vkey, err := os.ReadFile(keyFile); err == nil && integrity.Problem == "" {
		if cps, err := b.ReadCheckpoints(ctx, bf.stream); err == nil {
			signed, err := cps.All(ctx)
			if err == nil {
				integrity.CheckpointsVerified, err = merkle.VerifyCheckpoints(signed, string(vkey), tree.Root)
				if err != nil {
					integrity.Problem = err.Error()
				}
			} else if !errors.Is(err, checkpoint.ErrNone) {
				integrity.Problem = err.Error()
			}
		}
	} else if integrity.Problem == "" {
		integrity.Problem = "no checkpoint verifier key (" + keyFile + "); checkpoints not checked"
	}
	builder.SetIntegrity(integrity)
	return builder
}
