// Command keyledger-bench drives load against keyledger and measures it. It
// is not part of the service: it is the load generator the Makefile's bench
// targets run, kept as its own binary so the service carries no load
// generator and no HTTP client it does not need.
//
//	keyledger-bench [flags]                    drive one operation at a running service
//	keyledger-bench --soak [flags]             grow a ledger to millions of events, measuring at each size
//	keyledger-bench --noisy-neighbour [flags]  a victim account's rate beside a noisy one
//
// The soak and noisy-neighbour modes start `keyledger serve` themselves: the
// keyledger binary is --keyledger, by default the one beside this binary.
//
// Every flag can also be set by an environment variable KEYLEDGER_<FLAG>
// (e.g. KEYLEDGER_ENDPOINT); flags win over the environment.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() { os.Exit(bench(os.Args[1:], os.Stdout, os.Stderr)) }

// keyledgerBinary is the keyledger executable the soak and noisy-neighbour
// modes run (serve, report, audit verify); set from --keyledger.
var keyledgerBinary string

// defaultKeyledger is the keyledger binary beside this one, where
// `make build` puts both.
func defaultKeyledger() string {
	exe, err := os.Executable()
	if err != nil {
		return "keyledger"
	}
	return filepath.Join(filepath.Dir(exe), "keyledger")
}

// parseFlags parses args, then fills every flag not given from its
// KEYLEDGER_<FLAG> environment variable.
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
