package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/keyledger/keyledger/gateway/rootclient"
	"github.com/keyledger/keyledger/gateway/sigv4"
)

// unsealCmd submits one unseal share (or, without --share, one read from
// the terminal) to a sealed deployment and prints where unsealing stands.
func unsealCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("unseal", flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("url", "", "the sealed deployment's endpoint")
	share := fs.String("share", "", "one unseal share (default: prompt on the terminal, so it stays out of shell history)")
	region := fs.String("region", envOr("AWS_REGION", envOr("AWS_DEFAULT_REGION", "us-east-1")), "SigV4 region")
	caBundle := fs.String("ca-bundle", os.Getenv("AWS_CA_BUNDLE"), "PEM file of CAs to trust for https")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	if *endpoint == "" {
		fmt.Fprint(stderr, "usage: keyledger unseal --url URL [--share SHARE]\n"+
			"credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (a principal allowed keyledger:Unseal)\n")
		return 2
	}
	c := &rootclient.Client{Endpoint: *endpoint, Region: *region,
		Credentials: sigv4.Credentials{AccessKeyID: os.Getenv("AWS_ACCESS_KEY_ID"), Secret: os.Getenv("AWS_SECRET_ACCESS_KEY")}}
	var err error
	if c.HTTP, err = httpClient(*caBundle); err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 2
	}
	s := *share
	if s == "" {
		b, err := promptSecret("unseal share: ")
		if err != nil {
			fmt.Fprintf(stderr, "keyledger: %v; pass --share\n", err)
			return 2
		}
		s = string(b)
	}
	p, err := c.Unseal(context.Background(), s)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	if p.Sealed {
		fmt.Fprintf(stdout, "sealed: %d of %d shares submitted\n", p.Submitted, p.Threshold)
	} else {
		fmt.Fprintln(stdout, "unsealed")
	}
	return 0
}
