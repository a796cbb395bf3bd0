package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/keyledger/keyledger/ledger/salvage"
)

// auditSalvage is `audit export --salvage`: every event the data
// directory's block files still hold, read without nats-server, into an
// export directory with a report of what is lost (package salvage).
// Exit 0: nothing lost; 3: saved with losses (printed); 1: failed.
func auditSalvage(bf *backendFlags, out, pubkey string, stdout, stderr io.Writer) int {
	if bf.natsURL != "" || out == "" {
		fmt.Fprintln(stderr, "keyledger audit export --salvage: needs --data-dir (the server stopped) and --out")
		return 2
	}
	release, err := lockDataDir(bf.dataDir)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	defer release()
	keyFile := pubkey
	if keyFile == "" && fileExists(bf.checkpointVerifierFile()) {
		keyFile = bf.checkpointVerifierFile()
	}
	var vkey string
	if keyFile != "" {
		data, err := os.ReadFile(keyFile)
		if err != nil {
			fmt.Fprintf(stderr, "keyledger: --pubkey: %v\n", err)
			return 1
		}
		vkey = strings.TrimSpace(string(data))
	} else {
		fmt.Fprintln(stderr, "keyledger: no checkpoint verifier key (--pubkey): checkpoints are not checked")
	}
	meter := newMeter("audit export --salvage", 0, stderr)
	rep, err := salvage.Salvage(context.Background(), salvage.Request{StoreDir: filepath.Join(bf.dataDir, "jetstream"),
		Stream: bf.stream, Dir: out, VerifierKey: vkey, Progress: func(seq uint64) { meter.Add(seq, 0) }})
	meter.Done()
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	fmt.Fprint(stdout, rep.Summary())
	fmt.Fprintf(stdout, "saved to %s (report: %s)\n", out, filepath.Join(out, salvage.ReportFile))
	if !rep.Complete() {
		return 3
	}
	return 0
}
