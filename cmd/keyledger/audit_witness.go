package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/keyledger/keyledger/gateway/auditclient"
	"github.com/keyledger/keyledger/gateway/sigv4"
	"github.com/keyledger/keyledger/ledger/witness"
)

// Exit statuses of audit witness.
const (
	witnessAlarm     = 1 // rollback, fork or bad signature: page someone
	witnessUnchecked = 3 // --once could not reach or read the deployment
)

// auditWitness watches a deployment's signed checkpoints from outside
// (package witness): each must verify and extend the last one seen (kept
// in --state).
func auditWitness(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit witness", flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("url", "", "the deployment's endpoint (e.g. https://kms.example:8443)")
	pubkey := fs.String("pubkey", "", "the checkpoint verifier key file (note vkey, <checkpoint key>.pub)")
	statePath := fs.String("state", "witness.state", "file keeping the last checkpoint seen")
	interval := fs.Duration("interval", 30*time.Second, "how often to poll")
	once := fs.Bool("once", false, "check once and exit (0 ok, 1 alarm, 3 could not check)")
	region := fs.String("region", envOr("AWS_REGION", envOr("AWS_DEFAULT_REGION", "us-east-1")), "SigV4 region")
	caBundle := fs.String("ca-bundle", os.Getenv("AWS_CA_BUNDLE"), "PEM file of CAs to trust for https")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	if *endpoint == "" || *pubkey == "" {
		fmt.Fprint(stderr, "usage: keyledger audit witness --url URL --pubkey FILE [--state FILE] [--interval D] [--once]\n"+
			"credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (a principal allowed keyledger:ReadAudit)\n")
		return 2
	}
	vkey, err := os.ReadFile(*pubkey)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 2
	}
	client := &auditclient.Client{
		Endpoint: *endpoint, Region: *region,
		Credentials: sigv4.Credentials{AccessKeyID: os.Getenv("AWS_ACCESS_KEY_ID"), Secret: os.Getenv("AWS_SECRET_ACCESS_KEY")},
	}
	if client.HTTP, err = httpClient(*caBundle); err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 2
	}
	w := &witnessRun{src: client, vkey: strings.TrimSpace(string(vkey)), state: *statePath, stdout: stdout, stderr: stderr}
	if *once {
		return w.check(context.Background())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for {
		if code := w.check(ctx); code == witnessAlarm {
			return code
		}
		select {
		case <-ctx.Done():
			return 0
		case <-tick.C:
		}
	}
}

type witnessRun struct {
	src    witness.Source
	vkey   string
	state  string
	stdout io.Writer
	stderr io.Writer
}

// check runs one round (witness.Round) and returns its exit status.
func (w *witnessRun) check(ctx context.Context) int {
	prev, next, err := witness.Round(ctx, w.src, w.vkey, w.state)
	var unsaved *witness.SaveError
	switch {
	case witness.Alarm(err):
		fmt.Fprintf(w.stderr, "keyledger: ALERT: %v\n", err)
		return witnessAlarm
	case errors.As(err, &unsaved):
		fmt.Fprintf(w.stderr, "keyledger: witness could not save its state: %v\n", err)
		return witnessUnchecked
	case err != nil:
		fmt.Fprintf(w.stderr, "keyledger: witness could not check: %v\n", err)
		return witnessUnchecked
	}
	from := int64(0)
	if prev != nil {
		from = prev.Checkpoint.Size
	}
	fmt.Fprintf(w.stdout, "OK: %d events (was %d), root %s\n", next.Checkpoint.Size, from, next.Checkpoint.Root)
	return 0
}

// httpClient trusts the system roots plus, if given, a PEM bundle.
func httpClient(caBundle string) (*http.Client, error) {
	if caBundle == "" {
		return &http.Client{Timeout: 30 * time.Second}, nil
	}
	pem, err := os.ReadFile(caBundle)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", caBundle)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Timeout: 30 * time.Second, Transport: tr}, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
