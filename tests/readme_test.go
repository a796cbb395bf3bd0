package tests

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyledger/keyledger/gateway/principals"
)

// The README's examples are tested as written. Each fenced block of shell,
// Go, JSON or YAML carries a marker on the line above it:
//
//	<!-- test: run -->                    run with bash while the server serves
//	<!-- test: run stopped -->            run after the server was stopped
//	<!-- test: run in repo -->            run in the repository's directory
//	<!-- test: file NAME -->              write the block to NAME for later blocks
//	<!-- test: principals -->             the block must load as a principals file
//	<!-- test: go -->                     the block, as main's body, must run
//	<!-- test: output of first start -->  serve's first start prints these lines
//	<!-- test: skip: REASON -->           not run here, and why
//
// and "; expect: TEXT" after run or go: its output must contain TEXT. A block
// without a marker fails the test, so a new example cannot go untested by
// accident.
//
// The blocks run in a fresh directory holding bin/keyledger (the binary
// TestMain built) and, as ./data, the data directory of a fresh `keyledger
// serve`, started as `make run` starts it plus --nats-listen, with the
// admin credentials it printed on first start in the environment — what a
// reader following the README has. Two substitutions, no more: the
// README's ports 127.0.0.1:8080 and 127.0.0.1:4222 become free ones.

// readmeBlock is one fenced block of the README.
type readmeBlock struct {
	line   int    // of the opening fence, 1-based
	lang   string // after the fence: sh, go, json, yaml, …
	marker string // the test marker above it, without <!-- test: -->
	body   string // dedented to the fence's indentation
}

var markerRE = regexp.MustCompile(`^\s*<!-- test: (.*) -->\s*$`)

// readmeBlocks parses the README's fenced blocks with their markers.
func readmeBlocks(t *testing.T) []readmeBlock {
	t.Helper()
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []readmeBlock
	var cur *readmeBlock
	var indent, marker string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimLeft(line, " ")
		if cur != nil {
			if strings.HasPrefix(trimmed, "```") && len(line)-len(trimmed) == len(indent) {
				blocks = append(blocks, *cur)
				cur = nil
				continue
			}
			cur.body += strings.TrimPrefix(line, indent) + "\n"
			continue
		}
		if strings.HasPrefix(trimmed, "```") {
			indent = line[:len(line)-len(trimmed)]
			cur = &readmeBlock{line: n, lang: strings.TrimPrefix(trimmed, "```"), marker: marker}
			marker = ""
			continue
		}
		if m := markerRE.FindStringSubmatch(line); m != nil {
			marker = m[1]
		} else {
			marker = ""
		}
	}
	if cur != nil {
		t.Fatalf("README.md:%d: fenced block never closed", cur.line)
	}
	return blocks
}

// directive splits a marker into its kind and its expected output.
func directive(marker string) (kind, expect string) {
	kind, expect, _ = strings.Cut(marker, "; expect: ")
	return strings.TrimSpace(kind), strings.TrimSpace(expect)
}

// TestREADMEExamples runs the README's examples against a fresh server.
func TestREADMEExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and runs the README's examples")
	}
	blocks := readmeBlocks(t)
	for _, b := range blocks {
		switch b.lang {
		case "sh", "go", "json", "yaml":
			if b.marker == "" {
				t.Errorf("README.md:%d: a ```%s block without a <!-- test: … --> marker above it", b.line, b.lang)
			}
		}
		if kind, _ := directive(b.marker); strings.HasPrefix(kind, "skip") && strings.TrimSpace(strings.TrimPrefix(kind, "skip:")) == "" {
			t.Errorf("README.md:%d: a skipped block must say why (<!-- test: skip: REASON -->)", b.line)
		}
	}
	if t.Failed() {
		return
	}

	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	if err := os.MkdirAll(filepath.Join(work, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(binary, filepath.Join(work, "bin", "keyledger")); err != nil {
		t.Fatal(err)
	}
	httpPort, natsPort := freePort(t), freePort(t)
	subst := strings.NewReplacer(
		"127.0.0.1:8080", "127.0.0.1:"+strconv.Itoa(httpPort),
		"127.0.0.1:4222", "127.0.0.1:"+strconv.Itoa(natsPort))

	// The server, as make run starts it, plus a NATS listener for the audit
	// examples; no principals file, so it makes an admin and prints the
	// credentials.
	serve := exec.Command(filepath.Join("bin", "keyledger"), "serve", "--data-dir", "./data",
		"--listen", "127.0.0.1:"+strconv.Itoa(httpPort), "--nats-listen", "127.0.0.1:"+strconv.Itoa(natsPort))
	serve.Dir = work
	serve.Env = cleanEnv(os.Environ())
	out := &syncBuffer{}
	serve.Stdout, serve.Stderr = out, out
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		serve.Process.Signal(syscall.SIGINT)
		done := make(chan error, 1)
		go func() { done <- serve.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("keyledger serve did not stop cleanly: %v\n%s", err, out)
			}
		case <-time.After(30 * time.Second):
			serve.Process.Kill()
			<-done
			t.Errorf("keyledger serve did not stop within 30 s of SIGINT")
		}
	}
	t.Cleanup(stop)
	waitReady(t, "http://127.0.0.1:"+strconv.Itoa(httpPort)+"/readyz", out)

	// What a reader pastes: the export lines serve printed.
	env := append(cleanEnv(os.Environ()),
		"PATH="+filepath.Join(work, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"),
		"AWS_CONFIG_FILE="+filepath.Join(work, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(work, "no-aws-credentials"),
		"AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=")
	exports := exportedVars(out.String())
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION"} {
		if exports[k] == "" {
			t.Fatalf("first start printed no export of %s:\n%s", k, out)
		}
		env = append(env, k+"="+exports[k])
	}
	_, awsErr := exec.LookPath("aws")

	run := func(t *testing.T, b readmeBlock, dir, expect string) {
		script := subst.Replace(b.body)
		if awsErr != nil && usesAWSCLI(script) {
			t.Skip("the AWS CLI is not installed here (.ci/run installs Debian's awscli)")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
		cmd.Dir, cmd.Env = dir, env
		got, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("README.md:%d: %v\n--- script\n%s--- output\n%s", b.line, err, script, got)
		}
		if expect != "" && !strings.Contains(string(got), expect) {
			t.Fatalf("README.md:%d: output lacks %q\n--- script\n%s--- output\n%s", b.line, expect, script, got)
		}
	}

	var afterStop []readmeBlock
	for _, b := range blocks {
		kind, expect := directive(b.marker)
		if b.marker == "" {
			continue
		}
		name := fmt.Sprintf("line%d", b.line)
		switch {
		case strings.HasPrefix(kind, "skip:"):
			t.Run(name, func(t *testing.T) { t.Skip(strings.TrimSpace(strings.TrimPrefix(kind, "skip:"))) })
		case kind == "run":
			t.Run(name, func(t *testing.T) { run(t, b, work, expect) })
		case kind == "run in repo":
			t.Run(name, func(t *testing.T) { run(t, b, repo, expect) })
		case kind == "run stopped":
			afterStop = append(afterStop, b)
		case strings.HasPrefix(kind, "file "):
			t.Run(name, func(t *testing.T) {
				if err := os.WriteFile(filepath.Join(work, strings.TrimPrefix(kind, "file ")), []byte(b.body), 0o600); err != nil {
					t.Fatal(err)
				}
			})
		case kind == "principals":
			t.Run(name, func(t *testing.T) {
				if _, err := principals.Parse([]byte(b.body)); err != nil {
					t.Fatalf("README.md:%d: the principals file does not load: %v", b.line, err)
				}
			})
		case kind == "go":
			t.Run(name, func(t *testing.T) { runGoExample(t, repo, subst.Replace(b.body), env, b.line, expect) })
		case kind == "output of first start":
			t.Run(name, func(t *testing.T) {
				for _, want := range strings.Split(strings.TrimSpace(b.body), "\n") {
					want, _, _ = strings.Cut(want, "…") // a placeholder: what follows is the server's own
					if !strings.Contains(out.String(), want) {
						t.Errorf("README.md:%d: first start did not print %q:\n%s", b.line, want, out)
					}
				}
			})
		default:
			t.Errorf("README.md:%d: unknown marker %q", b.line, b.marker)
		}
	}
	stop()
	for _, b := range afterStop {
		_, expect := directive(b.marker)
		t.Run(fmt.Sprintf("line%d", b.line), func(t *testing.T) { run(t, b, work, expect) })
	}
}

// TestREADMELinks checks that every link to a heading of the README names one.
func TestREADMELinks(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	inFence := false
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimLeft(line, " "), "```") {
			inFence = !inFence
			continue
		}
		if rest, ok := strings.CutPrefix(line, "#"); ok && !inFence {
			title := strings.TrimSpace(strings.TrimLeft(rest, "#"))
			anchors[githubAnchor(title)] = true
		}
	}
	for _, m := range regexp.MustCompile(`\]\(#([^)]+)\)`).FindAllStringSubmatch(string(data), -1) {
		if !anchors[m[1]] {
			t.Errorf("README.md links to #%s, which no heading makes", m[1])
		}
	}
}

// githubAnchor is the anchor GitHub gives a heading: lower case, spaces to
// hyphens, punctuation other than hyphens and underscores dropped.
func githubAnchor(title string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(title) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127 && r != '—' && r != '–':
			b.WriteRune(r)
		}
	}
	return b.String()
}

// cleanEnv drops what would steer the examples elsewhere: the caller's AWS
// and keyledger settings.
func cleanEnv(environ []string) []string {
	var env []string
	for _, kv := range environ {
		if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "KEYLEDGER_") || strings.HasPrefix(kv, "PATH=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "PATH="+os.Getenv("PATH"))
}

// exportedVars reads the `export A=x B=y` lines of serve's first start.
func exportedVars(out string) map[string]string {
	vars := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "export ")
		if !ok {
			continue
		}
		for _, kv := range strings.Fields(rest) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				vars[k] = v
			}
		}
	}
	return vars
}

var awsCLIRE = regexp.MustCompile(`(^|[\s"$(])aws\s`)

func usesAWSCLI(script string) bool { return awsCLIRE.MatchString(script) }

// waitReady waits for url to answer 200.
func waitReady(t *testing.T, url string, out fmt.Stringer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("keyledger serve not ready at %s:\n%s", url, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// goExampleMain is the program around a README Go example: the imports the
// examples use and the two credentials they name.
const goExampleMain = `package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log"
	"net/http"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

var (
	_ = fmt.Sprint
	_ = log.Print
	_ = os.ReadFile
	_ = http.Get
	_ = tls.Client
	_ = x509.NewCertPool
	_ = aws.String
	_ = credentials.NewStaticCredentialsProvider
	_ = kms.New
)

func main() {
	ctx := context.Background()
	accessKeyID, secretAccessKey := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	_, _, _ = ctx, accessKeyID, secretAccessKey
%s}
`

// runGoExample runs a README Go example as main's body, in a module with
// the repository's requirements (so it builds from the module cache).
func runGoExample(t *testing.T, repo, body string, env []string, line int, expect string) {
	dir := t.TempDir()
	for _, f := range []string{"go.mod", "go.sum"} {
		data, err := os.ReadFile(filepath.Join(repo, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(fmt.Sprintf(goExampleMain, body)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", "-mod=mod", ".")
	cmd.Dir = dir
	cmd.Env = append(env, "GOFLAGS=", "GOWORK=off")
	got, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README.md:%d: %v\n--- program body\n%s--- output\n%s", line, err, body, got)
	}
	if expect != "" && !strings.Contains(string(got), expect) {
		t.Fatalf("README.md:%d: output lacks %q\n%s", line, expect, got)
	}
}
