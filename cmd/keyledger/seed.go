package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/gateway/node"
	"github.com/keyledger/keyledger/gateway/seed"
	"github.com/keyledger/keyledger/gateway/sigv4"
)

const seedUsage = `usage: keyledger seed --url URL [--dev] FILE
Seeds a running deployment with the keys FILE declares (YAML; see the README's "Seed files"), through a
SigV4-signed POST /seed: credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a principal of the
operator account allowed keyledger:Seed. --dev asks for development mode (key material for AWS_KMS keys),
which the server grants only when started with --seed-dev.
`

// seedCmd seeds a running server and prints what it did with each entry.
func seedCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, seedUsage); fs.PrintDefaults() }
	endpoint := fs.String("url", "", "the deployment's endpoint (e.g. https://kms.example:8443)")
	dev := fs.Bool("dev", false, "development mode: allow key material for AWS_KMS keys (the server needs --seed-dev)")
	region := fs.String("region", envOr("AWS_REGION", envOr("AWS_DEFAULT_REGION", "us-east-1")), "SigV4 region")
	caBundle := fs.String("ca-bundle", os.Getenv("AWS_CA_BUNDLE"), "PEM file of CAs to trust for https")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	if *endpoint == "" || fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	file, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 2
	}
	defer clear(file)
	c := &seed.Client{Endpoint: *endpoint, Region: *region,
		Credentials: sigv4.Credentials{AccessKeyID: os.Getenv("AWS_ACCESS_KEY_ID"), Secret: os.Getenv("AWS_SECRET_ACCESS_KEY")}}
	if c.HTTP, err = httpClient(*caBundle); err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 2
	}
	out, err := c.Seed(context.Background(), file, *dev)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	printSeeded(stdout, out)
	return 0
}

func printSeeded(w io.Writer, out *keyservice.SeedOutput) {
	for _, k := range out.Keys {
		what := "unchanged"
		switch {
		case k.Created:
			what = "created"
		case len(k.Changes) > 0:
			what = "changed"
		}
		line := fmt.Sprintf("%s %s %s", k.KeyId, what, k.Entry)
		if len(k.Changes) > 0 {
			line += " [" + strings.Join(k.Changes, " ") + "]"
		}
		if k.Note != "" {
			line += " (" + k.Note + ")"
		}
		fmt.Fprintln(w, line)
	}
}

// seedAtStart is serve --seed: the file's keys are seeded before the
// server answers, as a service event. A seed that does not apply stops
// serve.
func seedAtStart(ctx context.Context, n *node.Node, path string, dev bool, account string, log *slog.Logger) error {
	file, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	defer clear(file)
	in, err := seed.Parse(file)
	if err != nil {
		return err
	}
	defer seed.Clear(in)
	if in.Account == "" {
		in.Account = account
	}
	in.KnownMaterial = dev
	out, err := n.Service.SeedAtStart(ctx, in)
	if err != nil {
		var e *keyservice.Error
		if errors.As(err, &e) {
			return fmt.Errorf("%s: %s", e.Code, e.Message)
		}
		return err
	}
	var created, changed int
	for _, k := range out.Keys {
		switch {
		case k.Created:
			created++
		case len(k.Changes) > 0:
			changed++
		}
		if k.Note != "" {
			log.Warn("seed entry left as it is", "entry", k.Entry, "key", k.KeyId, "note", k.Note)
		}
	}
	log.Info("seeded", "file", path, "sha256", in.FileHash, "keys", len(out.Keys), "created", created, "changed", changed,
		"development_mode", dev)
	return nil
}
