// Command keyledger is a self-hosted key management service that speaks the
// AWS KMS API and keeps a tamper-evident ledger of every key operation.
//
//	keyledger serve               run the service (embedded NATS by default)
//	keyledger audit verify        check the ledger's hash chain, or --offline an export
//	keyledger audit export        write events as JSON lines or CloudTrail records
//	keyledger audit checkpoint    print the newest signed checkpoint
//	keyledger audit prove         print an inclusion or consistency proof
//	keyledger audit tail          print events live, one a line
//	keyledger report compliance   the compliance report (JSON, CSV or HTML)
//	keyledger keys describe       a key as it was at a time, and who could use it
//	keyledger backup              write a verifiable backup of a deployment
//	keyledger restore             verify a backup and rebuild a deployment from it
//	keyledger seed                seed a running service from a seed file
//	keyledger material restore    put back one key's unreadable material from a backup
//	keyledger version             print the version
//
// Each command lives in its own file (serve.go, audit_verify.go, …); they
// parse flags and wire library code, nothing more.
//
// Every flag can also be set by an environment variable: --data-dir is
// KEYLEDGER_DATA_DIR, and so on. Flags win over the environment.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

const usage = `keyledger: an AWS KMS-compatible key service with a hash-chained audit ledger.

Usage:
  keyledger serve [flags]          run the service
  keyledger audit verify [flags]   verify every link of the ledger's hash chain (or --offline an export)
  keyledger audit export [flags]   write events as JSON lines or CloudTrail records
  keyledger audit archive [flags]  write the events before T as a self-verifying archive
  keyledger audit prune [flags]    remove archived whole segments from the deployment (recorded, retention-checked)
  keyledger audit checkpoint       print the newest signed checkpoint
  keyledger audit prove [flags]    print an inclusion or consistency proof
  keyledger audit tail [flags]     print events live, one a line
  keyledger audit witness [flags]  watch a deployment's signed checkpoints for rollback or fork
  keyledger report compliance      the compliance report (JSON, CSV or HTML with charts)
  keyledger keys describe K [--as-of T]   a key's state, policy, grants, aliases and who could decrypt, at T
  keyledger backup --out DIR --signing-key K [--data-dir D | --nats-url U]   write a consistent, signed, verifiable backup
  keyledger restore --from DIR --pubkey FILE --backup-pubkey FILE (--not-before T | --witness-state F | --allow-rollback)
          [--deletions-from EXPORT] [--data-dir NEW | --nats-url U]   verify a backup and rebuild a deployment from it
  keyledger material restore --from DIR --key K   put back one key's material from a backup
  keyledger root init|seal|rotate|status   sealed root key: create, seal a plaintext one, rotate online
  keyledger unseal --url U --share S       submit one unseal share to a sealed deployment
  keyledger writer pubkey|register|list    register another instance's writer key (several instances)
  keyledger seed --url U [--dev] FILE      create the keys a seed file declares on a running deployment
  keyledger version

Run "keyledger <command> -h" for a command's flags. Every flag can also be
set with an environment variable KEYLEDGER_<FLAG> (e.g. KEYLEDGER_DATA_DIR).
`

var version = "dev"

const auditUsage = `usage:
  keyledger audit verify [--data-dir D | --nats-url U]            check every link of the hash chain
  keyledger audit verify --offline DIR --pubkey FILE              check an export against its signed checkpoint
  keyledger audit archive --before T --out DIR [--pubkey FILE] [--whole-segments]  write the messages before T as a self-verifying archive
  keyledger audit prune --archive DIR [--retention 8760h] [--pubkey FILE] [--writer-key FILE]  remove the segments an archive holds
  keyledger audit verify --offline DIR --pubkey FILE --archive A [--archive B …]
                                                                  check archives and a later export join into one ledger
  keyledger audit export --format jsonl|cloudtrail [--since T] [--until T] [--out DIR]
  keyledger audit export --salvage --data-dir D --out DIR [--pubkey FILE]
                                                                  every event a damaged data directory still holds, and what is lost
  keyledger audit checkpoint [--data-dir D | --nats-url U]        print the newest signed checkpoint
  keyledger audit prove --index N [--size S]                      inclusion proof of event N
  keyledger audit prove --old A [--size B]                        consistency proof from tree size A to B
  keyledger audit tail [--nats-url U | --data-dir D] [--key K] [--event E] [--account A] [--since T | --from N] [--count N]
                                                                  print events live, one JSON line each
  keyledger audit witness --url URL --pubkey FILE [--state FILE] [--interval D] [--once]
                                                                  alarm (exit 1) on a rolled-back, forked or forged checkpoint
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stderr)
	case "audit":
		if len(args) < 2 {
			fmt.Fprint(stderr, auditUsage)
			return 2
		}
		switch args[1] {
		case "verify":
			return auditVerify(args[2:], stdout, stderr)
		case "archive":
			return auditArchive(args[2:], stdout, stderr)
		case "prune":
			return auditPrune(args[2:], stdout, stderr)
		case "export":
			return auditExport(args[2:], stdout, stderr)
		case "checkpoint":
			return auditCheckpoint(args[2:], stdout, stderr)
		case "prove":
			return auditProve(args[2:], stdout, stderr)
		case "tail":
			return auditTail(args[2:], stdout, stderr)
		case "witness":
			return auditWitness(args[2:], stdout, stderr)
		}
		fmt.Fprint(stderr, auditUsage)
		return 2
	case "bench":
		fmt.Fprintln(stderr, "keyledger: the load generator is its own binary now: keyledger-bench (make build builds it; make bench runs it)")
		return 2
	case "backup":
		return backupCmd(args[1:], stdout, stderr)
	case "restore":
		return restoreCmd(args[1:], stdout, stderr)
	case "material":
		return materialCmd(args[1:], stdout, stderr)
	case "report":
		if len(args) < 2 || args[1] != "compliance" {
			fmt.Fprintln(stderr, "usage: keyledger report compliance [--format json|csv|html] [--out FILE]")
			return 2
		}
		return reportCompliance(args[2:], stdout, stderr)
	case "keys":
		if len(args) < 2 || args[1] != "describe" {
			fmt.Fprintln(stderr, "usage: keyledger keys describe KEY_ID [--as-of T]")
			return 2
		}
		return keysDescribe(args[2:], stdout, stderr)
	case "root":
		return rootCmd(args[1:], stdout, stderr)
	case "unseal":
		return unsealCmd(args[1:], stdout, stderr)
	case "writer":
		return writerCmd(args[1:], stdout, stderr)
	case "seed":
		return seedCmd(args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "keyledger", version)
		return 0
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "keyledger: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// parseFlags parses args, then fills every flag not given on the command
// line from KEYLEDGER_<NAME> in the environment.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		env := "KEYLEDGER_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s: %w", env, e)
			}
		}
	})
	return err
}
