package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/keyledger/keyledger/gateway/sigv4"
	"github.com/keyledger/keyledger/gateway/writerclient"
	"github.com/keyledger/keyledger/ledger/writer"
)

const writerUsage = `usage:
  keyledger writer pubkey [--key FILE | --data-dir DIR]
      print the public key of an instance's writer key (generated if absent),
      to register it; the private key never leaves the file
  keyledger writer register --url URL --pubkey KEY
      register another instance's writer public key (as pubkey prints it) through
      the registered instance at URL, signing with AWS_ACCESS_KEY_ID and
      AWS_SECRET_ACCESS_KEY (an operator-account principal allowed keyledger:RegisterWriter)
  keyledger writer revoke --url URL (--writer-id ID | --pubkey KEY) [--reason TEXT]
      revoke a registered writer through another registered instance at URL (an
      operator-account principal allowed keyledger:RevokeWriter): from then on
      every message its key signs is quarantined and its instance serves nothing.
      A revoked key is never registered again: give the instance a new key
  keyledger writer list --url URL
      list the registered writers, then the revoked ones
`

// writerCmd registers the writer keys of a deployment's second and later
// instances (package writerapi): each instance signs with its own key.
func writerCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, writerUsage)
		return 2
	}
	switch args[0] {
	case "pubkey":
		fs := flag.NewFlagSet("writer pubkey", flag.ContinueOnError)
		fs.SetOutput(stderr)
		keyFile := fs.String("key", "", "the writer key file (default <data-dir>/writer.key)")
		dataDir := fs.String("data-dir", "./data", "the instance's data directory")
		if err := parseFlags(fs, args[1:]); err != nil {
			return 2
		}
		path := *keyFile
		if path == "" {
			path = filepath.Join(*dataDir, "writer.key")
		}
		k, created, err := writer.LoadOrCreate(path)
		if err != nil {
			fmt.Fprintf(stderr, "keyledger: %v\n", err)
			return 1
		}
		if created {
			fmt.Fprintf(stderr, "keyledger: created the writer key %s (keep it private; it never leaves this host)\n", path)
		}
		fmt.Fprintln(stdout, k.PublicText())
		return 0
	case "register", "revoke", "list":
		fs := flag.NewFlagSet("writer "+args[0], flag.ContinueOnError)
		fs.SetOutput(stderr)
		endpoint := fs.String("url", "", "a registered instance's endpoint (e.g. https://kms-1.example:8443)")
		pub := fs.String("pubkey", "", "the writer public key to register or revoke (base64, as `keyledger writer pubkey` prints it)")
		id := fs.String("writer-id", "", "revoke: the writer ID (as `keyledger writer list` prints it)")
		reason := fs.String("reason", "", "revoke: why, recorded in the ledger (printable text, never a secret)")
		region := fs.String("region", envOr("AWS_REGION", envOr("AWS_DEFAULT_REGION", "us-east-1")), "SigV4 region")
		caBundle := fs.String("ca-bundle", os.Getenv("AWS_CA_BUNDLE"), "PEM file of CAs to trust for https")
		if err := parseFlags(fs, args[1:]); err != nil {
			return 2
		}
		if *endpoint == "" || args[0] == "register" && *pub == "" || args[0] == "revoke" && (*pub == "") == (*id == "") {
			fmt.Fprint(stderr, writerUsage)
			return 2
		}
		c := &writerclient.Client{Endpoint: *endpoint, Region: *region,
			Credentials: sigv4.Credentials{AccessKeyID: os.Getenv("AWS_ACCESS_KEY_ID"), Secret: os.Getenv("AWS_SECRET_ACCESS_KEY")}}
		var err error
		if c.HTTP, err = httpClient(*caBundle); err != nil {
			fmt.Fprintf(stderr, "keyledger: %v\n", err)
			return 2
		}
		switch args[0] {
		case "list":
			ws, revoked, err := c.List(context.Background())
			if err != nil {
				fmt.Fprintf(stderr, "keyledger: %v\n", err)
				return 1
			}
			for _, id := range slices.Sorted(maps.Keys(ws)) {
				fmt.Fprintf(stdout, "%s %s\n", id, ws[id])
			}
			for _, id := range slices.Sorted(maps.Keys(revoked)) {
				r := revoked[id]
				fmt.Fprintf(stdout, "%s %s revoked by %s (event %d, stream sequence %d)\n", id, r.PublicKey, r.By, r.Pos, r.Seq)
			}
			return 0
		case "revoke":
			r, err := c.Revoke(context.Background(), strings.TrimSpace(*id), strings.TrimSpace(*pub), *reason)
			if err != nil {
				fmt.Fprintf(stderr, "keyledger: %v\n", err)
				return 1
			}
			if r.Already {
				fmt.Fprintf(stdout, "writer %s was revoked already (by writer %s)\n", r.WriterID, r.RevokedBy)
				return 0
			}
			fmt.Fprintf(stdout, "writer %s revoked (by writer %s): every message it signs from now on is quarantined\n", r.WriterID, r.RevokedBy)
			return 0
		}
		r, err := c.Register(context.Background(), strings.TrimSpace(*pub))
		if err != nil {
			fmt.Fprintf(stderr, "keyledger: %v\n", err)
			return 1
		}
		if r.Already {
			fmt.Fprintf(stdout, "writer %s was registered already\n", r.WriterID)
			return 0
		}
		fmt.Fprintf(stdout, "writer %s registered (by writer %s); the instance holding its key writes once it has folded the registration\n", r.WriterID, r.RegisteredBy)
		return 0
	}
	fmt.Fprint(stderr, writerUsage)
	return 2
}
