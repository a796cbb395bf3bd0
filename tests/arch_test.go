package tests

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/keyledger/keyledger"

// TestDependencyDirection enforces DESIGN.md's layout: dependencies point
// one way (cmd → gateway → {projections, ledger, crypto}, projections →
// ledger), only the gateway imports Fiber, only the ledger imports NATS, and
// crypto depends on nothing but the standard library and vetted crypto
// libraries.
func TestDependencyDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"/...").Output()
	if err != nil {
		t.Fatal(err)
	}
	layer := func(pkg string) string {
		rest, ok := strings.CutPrefix(pkg, module+"/")
		if !ok {
			return ""
		}
		top, _, _ := strings.Cut(rest, "/")
		return top
	}
	allowed := map[string][]string{ // layer → layers it may import
		"crypto":      {"crypto"},
		"ledger":      {"ledger", "crypto"},
		"projections": {"projections", "ledger", "crypto"},
		"gateway":     {"gateway", "projections", "ledger", "crypto"},
		"cmd":         {"cmd", "gateway", "projections", "ledger", "crypto"},
		"tests":       {"tests", "cmd", "gateway", "projections", "ledger", "crypto"},
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, imports := fields[0], fields[1:]
		from := layer(pkg)
		for _, imp := range imports {
			checked++
			if to := layer(imp); to != "" {
				if !contains(allowed[from], to) {
					t.Errorf("%s imports %s: %s may not depend on %s", pkg, imp, from, to)
				}
				continue
			}
			switch {
			case strings.HasPrefix(imp, "github.com/gofiber/") || strings.HasPrefix(imp, "github.com/valyala/fasthttp"):
				if from != "gateway" && from != "cmd" {
					t.Errorf("%s imports %s: only the gateway serves HTTP", pkg, imp)
				}
			case strings.HasPrefix(imp, "github.com/nats-io/"):
				if from != "ledger" && from != "tests" {
					t.Errorf("%s imports %s: only the ledger talks to NATS", pkg, imp)
				}
			}
			if from == "crypto" && strings.Contains(strings.Split(imp, "/")[0], ".") && !vettedCrypto(imp) {
				t.Errorf("%s imports %s: crypto may use only the standard library and vetted crypto libraries", pkg, imp)
			}
		}
	}
	if checked < 100 {
		t.Fatalf("only %d imports checked; go list output looks wrong", checked)
	}
}

// vettedCrypto lists the libraries crypto/ may use beyond the standard
// library: x/crypto, the standard library's own ML-DSA packaged for Go 1.26,
// and decred's maintained secp256k1.
func vettedCrypto(imp string) bool {
	for _, p := range []string{"golang.org/x/crypto/", "filippo.io/mldsa", "github.com/decred/dcrd/dcrec/secp256k1/"} {
		if strings.HasPrefix(imp, p) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
