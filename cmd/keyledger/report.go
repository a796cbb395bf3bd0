package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/projections/compliance"
)

// reportCompliance writes the compliance report built from the ledger.
func reportCompliance(args []string, stdout, stderr io.Writer) int {
	fs, bf := ledgerFlagSet("report compliance", stderr)
	format := fs.String("format", "json", "json, csv or html")
	out := fs.String("out", "", "write to this file instead of stdout")
	pubkey := fs.String("pubkey", "", "checkpoint verifier key file (default <data-dir>/checkpoint.key.pub)")
	region := fs.String("region", "us-east-1", "region in ARNs")
	maxAge := fs.Int("max-age-days", 365, "cryptoperiod: the oldest current key material allowed")
	unused := fs.Int("unused-days", 90, "flag enabled keys unused this long")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	if *format != "json" && *format != "csv" && *format != "html" {
		fmt.Fprintln(stderr, "keyledger report compliance: --format must be json, csv or html")
		return 2
	}
	l, b, done, ok := openLedgerForAudit(bf, stderr)
	if !ok {
		return 1
	}
	defer done()
	ctx := context.Background()
	var tree merkle.Tree
	builder := compliance.NewBuilder(compliance.Options{Now: time.Now(), Region: *region, MaxAgeDays: *maxAge, UnusedDays: *unused})
	integrity := &compliance.Integrity{}
	head, err := l.Replay(ctx, chain.Head{}, func(r event.Record) error {
		builder.Add(r)
		return tree.Append(r.Raw)
	})
	if err != nil {
		integrity.Problem = err.Error()
	} else {
		integrity.ChainVerified, integrity.Events, integrity.Head = true, head.Count, head.Hash.String()
	}
	integrity.Quarantined, integrity.QuarantineReasons = l.Quarantined(), l.QuarantineReasons()
	keyFile := *pubkey
	if keyFile == "" {
		keyFile = filepath.Join(bf.dataDir, "checkpoint.key.pub")
	}
	if vkey, err := os.ReadFile(keyFile); err == nil && integrity.Problem == "" {
		if cps, err := b.ReadCheckpoints(ctx, bf.stream); err == nil {
			signed, err := cps.All(ctx)
			if err == nil {
				integrity.CheckpointsVerified, err = merkle.VerifyCheckpoints(signed, string(vkey), tree.Root)
				if err != nil {
					integrity.Problem = err.Error()
				}
			} else if !errors.Is(err, ledger.ErrNoCheckpoint) {
				integrity.Problem = err.Error()
			}
		}
	} else if integrity.Problem == "" {
		integrity.Problem = "no checkpoint verifier key (" + keyFile + "); checkpoints not checked"
	}
	builder.SetIntegrity(integrity)
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
