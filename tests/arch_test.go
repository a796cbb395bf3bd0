package tests

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
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
//     awsjson, auditapi, rootapi and console), cmd and tests reach Fiber;
//   - crypto imports nothing but the standard library and vetted crypto
//     libraries.
//
// TestEventsAreBuiltByTheirServices adds the rule on who builds events.
func TestDependencyDirection(t *testing.T) {
	allowed := map[string][]string{ // layer → layers it may import
		"crypto":      {"crypto"},
		"ledger":      {"ledger", "crypto"},
		"projections": {"projections", "ledger", "crypto"},
		"gateway":     {"gateway", "projections", "ledger", "crypto"},
		"cmd":         {"cmd", "gateway", "projections", "ledger", "crypto"},
		"tests":       {"tests", "cmd", "gateway", "projections", "ledger", "crypto"},
	}
	httpLayers := []string{module + "/gateway/awsjson", module + "/gateway/auditapi", module + "/gateway/rootapi", module + "/gateway/console", module + "/gateway/seedapi", module + "/gateway/writerapi"}
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
				t.Errorf("%s imports %s: in the gateway only awsjson, auditapi, rootapi, console, seedapi and writerapi touch Fiber", p.path, imp)
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

// eventPkg defines the ledger's events: the envelope, every body, and the
// codec.
const eventPkg = module + "/ledger/event"

// readingTypes are the ledger/event types readers build: a committed
// record and a hash. Every other type of the package is part of an event.
var readingTypes = map[string]bool{"Record": true, "Hash": true}

// eventBuilders are the packages that may build events (composite
// literals, or new, of ledger/event types other than the reading types):
// the services that record them, never wiring.
var eventBuilders = map[string]string{
	eventPkg: "defines them",
	module + "/gateway/keyservice": "the KMS application service: every event it records — requests, refusals, " +
		"the scheduler's, the root key's, and the instance events node appends at start-up",
	module + "/ledger/retention":           "SegmentRemoved, recorded by prune, which the ledger reads back to accept its base",
	module + "/ledger/internal/ledgertest": "test support",
}

// TestEventsAreBuiltByTheirServices enforces that events are built in one
// layer, the services that record them: gateway/keyservice builds every
// event of the KMS service (node appends the writer and principals events
// keyservice builds), ledger/retention the SegmentRemoved event its prune
// records (see eventBuilders). Nothing else builds an event; in
// particular no package under cmd/ does, directly or by calling a
// function of the module that returns a new one (keyservice's
// WriterRegistration, …): commands parse, call and print. Test files and
// tests/ may build events freely.
//
// It reads every non-test Go file of the module with go/parser: precise
// enough to have caught cmd/keyledger/audit_prune.go building
// SegmentRemoved before it moved to ledger/retention (the "before" case of
// TestEventBuildingCheck).
func TestEventsAreBuiltByTheirServices(t *testing.T) {
	fset := token.NewFileSet()
	files := moduleFiles(t, fset)
	ctors := eventConstructors(files)
	if !ctors[module+"/gateway/keyservice"]["WriterRegistration"] {
		t.Fatalf("keyservice.WriterRegistration is not found as an event constructor (found %v): the check is blind", ctors)
	}
	checked := 0
	for _, f := range files {
		if _, ok := eventBuilders[f.pkg]; ok {
			continue
		}
		var calls map[string]map[string]bool
		if layer(f.pkg) == "cmd" {
			calls = ctors
		}
		for _, v := range eventBuilding(fset, f.ast, calls) {
			t.Errorf("%s: %s: only %s build events", v.pos, v.what, builderList())
		}
		checked++
	}
	if checked < 100 {
		t.Fatalf("only %d files checked; the walk looks wrong", checked)
	}
}

// TestEventBuildingCheck proves the check: it flags the file that built
// SegmentRemoved in cmd before the move, every way of building an event,
// and nothing a reader does.
func TestEventBuildingCheck(t *testing.T) {
	ctors := map[string]map[string]bool{module + "/gateway/keyservice": {"WriterRegistration": true}}
	before, err := os.ReadFile(filepath.Join("testdata", "arch", "audit_prune.go.before"))
	if err != nil {
		t.Fatal(err)
	}
	const header = "package main\n\nimport (\n\t\"github.com/keyledger/keyledger/ledger/event\"\n\tks \"github.com/keyledger/keyledger/gateway/keyservice\"\n)\n\n"
	for _, tc := range []struct {
		name, src string
		want      int
	}{
		{"before: cmd/keyledger/audit_prune.go", string(before), 2}, // &event.Event{…Body: &event.SegmentRemoved{…}}
		{"pointer literal", header + "var e = &event.Event{Operation: \"X\"}", 1},
		{"elided element type", header + "var es = []*event.Event{{Operation: \"X\"}}", 1},
		{"body by new", header + "var b = new(event.SegmentRemoved)", 1},
		{"part of an event", header + "var a = event.Actor{}", 1},
		{"renamed import", "package main\nimport ev \"github.com/keyledger/keyledger/ledger/event\"\nvar b = ev.APICall{}", 1},
		{"dot import", "package main\nimport . \"github.com/keyledger/keyledger/ledger/event\"\nvar b = APICall{}", 1},
		{"constructor call", header + "var e = ks.WriterRegistration(now, \"\", \"\", \"\", \"\")", 1},
		{"reading", header + "var r = event.Record{Raw: nil}\nvar rs = []event.Record{r}\nvar h = event.Hash{}\nvar d, _ = event.Decode(nil)", 0},
		{"another package's Event", "package main\nimport \"example.com/other/event\"\nvar e = event.Event{}", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, "x.go", tc.src, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			got := eventBuilding(fset, f, ctors)
			if len(got) != tc.want {
				t.Fatalf("%d findings %v, want %d", len(got), got, tc.want)
			}
		})
	}
}

func builderList() string {
	var names []string
	for p := range eventBuilders {
		names = append(names, strings.TrimPrefix(p, module+"/"))
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// goFile is a parsed non-test Go file of the module and its package.
type goFile struct {
	pkg string // import path
	ast *ast.File
}

// moduleFiles parses every non-test Go file of the module outside tests/
// and testdata directories.
func moduleFiles(t *testing.T, fset *token.FileSet) []goFile {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	var files []goFile
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		name := d.Name()
		if d.IsDir() {
			if p != root && (rel == "tests" || name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files = append(files, goFile{pkg: path.Join(module, filepath.ToSlash(filepath.Dir(rel))), ast: f})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// imports maps a file's local package names to import paths; "." for a
// dot import.
func imports(f *ast.File) map[string]string {
	out := map[string]string{}
	for _, s := range f.Imports {
		p, _ := strconv.Unquote(s.Path.Value)
		name := path.Base(p)
		if s.Name != nil {
			name = s.Name.Name
		}
		out[name] = p
	}
	return out
}

// eventType reports whether e names a ledger/event type other than the
// reading types, given the file's imports.
func eventType(e ast.Expr, imp map[string]string) (string, bool) {
	found := ""
	ast.Inspect(e, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if x, ok := sel.X.(*ast.Ident); ok && imp[x.Name] == eventPkg && !readingTypes[sel.Sel.Name] {
				found = "event." + sel.Sel.Name
			}
		}
		return found == ""
	})
	return found, found != ""
}

// eventConstructors are the module's exported package-level functions,
// outside ledger/event (whose functions decode), that return an event:
// import path → names.
func eventConstructors(files []goFile) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, f := range files {
		if f.pkg == eventPkg {
			continue
		}
		imp := imports(f.ast)
		for _, d := range f.ast.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !fn.Name.IsExported() || fn.Type.Results == nil {
				continue
			}
			for _, r := range fn.Type.Results.List {
				if _, ok := eventType(r.Type, imp); ok {
					if out[f.pkg] == nil {
						out[f.pkg] = map[string]bool{}
					}
					out[f.pkg][fn.Name.Name] = true
				}
			}
		}
	}
	return out
}

// finding is one place a file builds an event.
type finding struct {
	pos  token.Position
	what string
}

func (f finding) String() string { return f.pos.String() + ": " + f.what }

// eventBuilding finds where a file builds events: composite literals (with
// elided element types, through their outer literal) and new() of
// ledger/event types other than the reading types, a dot import of
// ledger/event, and calls to the functions ctors names.
func eventBuilding(fset *token.FileSet, f *ast.File, ctors map[string]map[string]bool) []finding {
	imp := imports(f)
	var out []finding
	if imp["."] == eventPkg {
		out = append(out, finding{fset.Position(f.Package), "dot import of ledger/event"})
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CompositeLit:
			if n.Type == nil {
				return true // elided: its outer literal names the type
			}
			if what, ok := eventType(n.Type, imp); ok {
				out = append(out, finding{fset.Position(n.Pos()), "builds " + what})
			}
		case *ast.CallExpr:
			if id, ok := n.Fun.(*ast.Ident); ok && id.Name == "new" && len(n.Args) == 1 {
				if what, ok := eventType(n.Args[0], imp); ok {
					out = append(out, finding{fset.Position(n.Pos()), "builds " + what + " with new"})
				}
			}
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && ctors[imp[x.Name]][sel.Sel.Name] {
					out = append(out, finding{fset.Position(n.Pos()), "calls " + x.Name + "." + sel.Sel.Name + ", which builds an event"})
				}
			}
		}
		return true
	})
	return out
}
