package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/keyledger/keyledger/gateway/auditclient"
	"github.com/keyledger/keyledger/gateway/history"
	"github.com/keyledger/keyledger/gateway/sigv4"
	"github.com/keyledger/keyledger/projections/compliance"
)

// reportCompliance writes the compliance report (history.Compliance):
// from the newest snapshot of the projections and the events after it (a
// cost that follows the tail, not the history), or with --full from the
// whole ledger, which also verifies the whole chain and every signed
// checkpoint. With --url it asks a running deployment, which answers from
// its live aggregates.
func reportCompliance(args []string, stdout, stderr io.Writer) int {
	fs, bf := ledgerFlagSet("report compliance", stderr)
	format := fs.String("format", "json", "json, csv or html")
	out := fs.String("out", "", "write to this file instead of stdout")
	pubkey := fs.String("pubkey", "", "checkpoint verifier key file (default <data-dir>/checkpoint.key.pub)")
	region := fs.String("region", "", "region in ARNs (default: the region the ledger recorded each key in)")
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
	keyFile := *pubkey
	if keyFile == "" {
		keyFile = bf.checkpointVerifierFile()
	}
	ctx := context.Background()
	opts := compliance.Options{Now: time.Now(), Region: *region, MaxAgeDays: *maxAge, UnusedDays: *unused}
	rep, err := history.Compliance(ctx, historySource(ctx, l, b, bf, keyFile, stderr), opts, *full)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
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

// reportFromDeployment fetches the report a running deployment makes from
// its live aggregates: the fast way while a server owns the ledger (the
// data directory is locked, and folding its tail costs what the tail does).
func reportFromDeployment(endpoint, region, caBundle, format, scope, out string, stdout, stderr io.Writer) int {
	if region == "" { // the region to sign for: the deployment's
		region = envOr("AWS_REGION", envOr("AWS_DEFAULT_REGION", "us-east-1"))
	}
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
