package tests

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/keyledger/keyledger"

// pkgInfo is one package of the module: what it imports directly and
// everything it reaches (go list's Deps, the closure `go list -deps` prints).
type pkgInfo struct {
	path    string
	imports []string
	deps    []string
}

func listPackages(t *testing.T) []pkgInfo {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}|{{join .Imports " "}}|{{join .Deps " "}}`, module+"/...").Output()
	if err != nil {
		t.Fatal(err)
	}
	var pkgs []pkgInfo
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		parts := strings.Split(line, "|")
		if len(parts) != 3 {
			t.Fatalf("go list line %q", line)
		}
		pkgs = append(pkgs, pkgInfo{path: parts[0], imports: strings.Fields(parts[1]), deps: strings.Fields(parts[2])})
	}
	if len(pkgs) < 20 {
		t.Fatalf("only %d packages listed; go list output looks wrong", len(pkgs))
	}
	return pkgs
}

// layer is the top-level folder of a package of this module, "" for others.
func layer(pkg string) string {
	rest, ok := strings.CutPrefix(pkg, module+"/")
	if !ok {
		return ""
	}
	top, _, _ := strings.Cut(rest, "/")
	return top
}

func isNATS(pkg string) bool { return strings.HasPrefix(pkg, "github.com/nats-io/") }

func isHTTPServer(pkg string) bool {
	return strings.HasPrefix(pkg, "github.com/gofiber/") || strings.HasPrefix(pkg, "github.com/valyala/fasthttp")
}

func isStandard(pkg string) bool { return !strings.Contains(strings.Split(pkg, "/")[0], ".") }

// policyLanguage is the IAM policy language. The gateway authorizes requests
// with it and the read-side folds (compliance, time travel) judge policies
// as they stood, so it lives under projections and stays pure: the standard
// library only.
const policyLanguage = module + "/projections/policy"

// TestDependencyDirection enforces the layout the README's folder table
// describes (the design notes live outside the repository):
//
//   - dependencies point one way: cmd → gateway → {projections, ledger,
//     crypto}, projections → ledger → crypto; tests may import anything;
//   - no projection or crypto package reaches NATS (nats.go, nats-server)
//     or the HTTP stack (Fiber, fasthttp), even indirectly;
//   - only the ledger imports NATS; only the gateway (its HTTP layers
//     awsjson, auditapi and rootapi), cmd and tests reach Fiber;
//   - crypto imports nothing but the standard library and vetted crypto
//     libraries.
func TestDependencyDirection(t *testing.T) {
	allowed := map[string][]string{ // layer → layers it may import
		"crypto":      {"crypto"},
		"ledger":      {"ledger", "crypto"},
		"projections": {"projections", "ledger", "crypto"},
		"gateway":     {"gateway", "projections", "ledger", "crypto"},
		"cmd":         {"cmd", "gateway", "projections", "ledger", "crypto"},
		"tests":       {"tests", "cmd", "gateway", "projections", "ledger", "crypto"},
	}
	httpLayers := []string{module + "/gateway/awsjson", module + "/gateway/auditapi", module + "/gateway/rootapi", module + "/gateway/seedapi"}
	checked := 0
	for _, p := range listPackages(t) {
		from := layer(p.path)
		for _, imp := range p.imports {
			checked++
			if to := layer(imp); to != "" {
				if !slices.Contains(allowed[from], to) {
					t.Errorf("%s imports %s: %s may not depend on %s", p.path, imp, from, to)
				}
				continue
			}
			if isNATS(imp) && from != "ledger" && from != "tests" {
				t.Errorf("%s imports %s: only the ledger talks to NATS", p.path, imp)
			}
			if isHTTPServer(imp) && from == "gateway" && !slices.Contains(httpLayers, p.path) {
				t.Errorf("%s imports %s: in the gateway only awsjson, auditapi, rootapi and seedapi touch Fiber", p.path, imp)
			}
			if from == "crypto" && !isStandard(imp) && !vettedCrypto(imp) {
				t.Errorf("%s imports %s: crypto may use only the standard library and vetted crypto libraries", p.path, imp)
			}
		}
		reported := map[string]bool{} // one error per package and rule
		reach := func(rule, dep, why string) {
			if !reported[rule] {
				reported[rule] = true
				t.Errorf("%s reaches %s: %s", p.path, dep, why)
			}
		}
		for _, dep := range p.deps {
			checked++
			switch {
			case isNATS(dep) && (from == "projections" || from == "crypto"):
				reach("nats", dep, "projections and crypto must not depend on NATS, even indirectly")
			case isHTTPServer(dep) && from != "gateway" && from != "cmd" && from != "tests":
				reach("http", dep, "only the gateway serves HTTP")
			}
			if p.path == policyLanguage && !isStandard(dep) {
				reach("policy", dep, "the policy language must stay standard-library only")
			}
		}
	}
	if checked < 1000 {
		t.Fatalf("only %d imports and dependencies checked; go list output looks wrong", checked)
	}
}

// vettedCrypto lists the libraries crypto/ may use beyond the standard
// library: x/crypto, the standard library's own ML-DSA packaged for Go 1.26,
// decred's maintained secp256k1, and miekg/pkcs11 (the PKCS#11 binding
// crypto11 builds on; crypto/hsm talks to HSMs through it).
func vettedCrypto(imp string) bool {
	for _, p := range []string{"golang.org/x/crypto/", "filippo.io/mldsa", "github.com/decred/dcrd/dcrec/secp256k1/", "github.com/miekg/pkcs11"} {
		if strings.HasPrefix(imp, p) {
			return true
		}
	}
	return false
}
