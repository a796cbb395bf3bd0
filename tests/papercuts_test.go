package tests

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/nats-io/nats-server/v2/server"
)

// envWithout is the test's environment less the named variables.
func envWithout(names ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		keep := true
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				keep = false
			}
		}
		if keep {
			out = append(out, kv)
		}
	}
	return out
}

// TestSignedCommandsWithoutCredentials: a command that signs its request
// says that it has no credentials, instead of sending an unsigned request
// and printing the server's IncompleteSignatureException.
func TestSignedCommandsWithoutCredentials(t *testing.T) {
	in := start(t)
	for _, args := range [][]string{
		{"root", "rotate", "--url", in.endpoint},
		{"root", "status", "--url", in.endpoint},
		{"unseal", "--url", in.endpoint, "--share", "klshare1-x"},
		{"audit", "witness", "--url", in.endpoint, "--pubkey", filepath.Join(in.dir, "checkpoint.key.pub"),
			"--state", filepath.Join(t.TempDir(), "state"), "--once"},
	} {
		cmd := exec.Command(binary, args...)
		cmd.Env = envWithout("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
		out, _ := cmd.CombinedOutput()
		if !strings.Contains(string(out), "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") ||
			strings.Contains(string(out), "IncompleteSignature") {
			t.Errorf("keyledger %s without credentials:\n%s", strings.Join(args[:2], " "), out)
		}
	}
}

// serveOutput runs `keyledger serve args…` until it serves (then stops it)
// or exits, and returns its exit code (-1: it served) and its output.
func serveOutput(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"serve"}, args...)...)
	cmd.Env = append(envWithout("KEYLEDGER_LOG_LEVEL"), env...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case err := <-done:
			if ee, ok := err.(*exec.ExitError); ok {
				return ee.ExitCode(), out.String()
			}
			return 0, out.String()
		case <-deadline:
			cmd.Process.Kill()
			<-done
			t.Fatalf("serve neither served nor exited:\n%s", out.String())
		case <-time.After(50 * time.Millisecond):
			if strings.Contains(out.String(), "keyledger serving the AWS KMS API") {
				cmd.Process.Signal(os.Interrupt)
				<-done
				return -1, out.String()
			}
		}
	}
}

// TestFailedFirstStartCreatesNoAdmin: a first start without a principals
// file that fails (a wrong passphrase) writes no principals.json and prints
// no credentials; the first start that succeeds creates the admin and
// prints its credentials, which work.
func TestFailedFirstStartCreatesNoAdmin(t *testing.T) {
	dir := t.TempDir()
	sealFile := filepath.Join(dir, "root.seal")
	dataDir := filepath.Join(dir, "data")
	pass := "KEYLEDGER_ROOT_PASSPHRASE=correct horse battery staple"
	cmd := exec.Command(binary, append([]string{"root", "init", "--seal", "passphrase", "--out", sealFile}, fastArgon...)...)
	cmd.Env = append(os.Environ(), pass)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("root init: %v\n%s", err, out)
	}
	port := strconv.Itoa(freePort(t))
	args := []string{"--listen", "127.0.0.1:" + port, "--data-dir", dataDir, "--root-seal", sealFile}

	code, out := serveOutput(t, []string{"KEYLEDGER_ROOT_PASSPHRASE=wrong horse battery staple"}, args...)
	if code <= 0 || !strings.Contains(out, "does not open the root key") {
		t.Fatalf("a wrong passphrase: exit %d\n%s", code, out)
	}
	if strings.Contains(out, "AWS_SECRET_ACCESS_KEY=") {
		t.Fatalf("a failed start printed credentials:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "principals.json")); !os.IsNotExist(err) {
		t.Fatalf("a failed start wrote principals.json (%v)", err)
	}

	code, out = serveOutput(t, []string{pass}, args...)
	if code != -1 {
		t.Fatalf("the right passphrase: exit %d\n%s", code, out)
	}
	id := regexp.MustCompile(`export AWS_ACCESS_KEY_ID=(\S+)`).FindStringSubmatch(out)
	secret := regexp.MustCompile(`export AWS_SECRET_ACCESS_KEY=(\S+)`).FindStringSubmatch(out)
	if id == nil || secret == nil {
		t.Fatalf("the first successful start printed no credentials:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "principals.json")); err != nil {
		t.Fatalf("principals.json: %v", err)
	}

	// They are the admin's: a restart prints nothing new and accepts them.
	cmd = exec.Command(binary, "serve", "--listen", "127.0.0.1:"+port, "--data-dir", dataDir, "--root-seal", sealFile)
	cmd.Env = append(os.Environ(), pass, "KEYLEDGER_LOG_LEVEL=warn")
	restart := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = restart, restart
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	c := newClient("http://127.0.0.1:"+port, id[1], secret[1])
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err = c.ListKeys(context.Background(), &kms.ListKeysInput{}); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("the printed credentials: %v\n%s", err, restart.String())
	}
	if strings.Contains(restart.String(), "AWS_SECRET_ACCESS_KEY=") {
		t.Fatalf("a restart printed credentials again:\n%s", restart.String())
	}
}

// monitoredNATS runs a nats-server with JetStream and a monitoring port,
// fsyncing every write or not, and returns its client and monitoring URLs.
func monitoredNATS(t *testing.T, syncAlways bool) (natsURL, monitorURL string) {
	t.Helper()
	port, httpPort := freePort(t), freePort(t)
	ns, err := server.NewServer(&server.Options{ServerName: "nats-sync-" + strconv.FormatBool(syncAlways),
		Host: "127.0.0.1", Port: port, HTTPHost: "127.0.0.1", HTTPPort: httpPort,
		JetStream: true, StoreDir: t.TempDir(), SyncAlways: syncAlways, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(ns.Shutdown)
	return "nats://127.0.0.1:" + strconv.Itoa(port), "http://127.0.0.1:" + strconv.Itoa(httpPort)
}

// TestSingleReplicaWarningSaysWhatWasChecked: with --replicas 1 on an
// external NATS, serve warns that durability rests on the server's fsync
// setting only when it is not `always` or cannot be read, and says which.
func TestSingleReplicaWarningSaysWhatWasChecked(t *testing.T) {
	principalsFile := filepath.Join(t.TempDir(), "principals.json")
	if err := os.WriteFile(principalsFile, []byte(testPrincipals), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(natsURL string, extra ...string) string {
		t.Helper()
		args := append([]string{"--listen", "127.0.0.1:" + strconv.Itoa(freePort(t)), "--nats-url", natsURL, "--replicas", "1",
			"--principals", principalsFile, "--data-dir", t.TempDir()}, extra...)
		code, out := serveOutput(t, []string{"KEYLEDGER_LOG_LEVEL=info"}, args...)
		if code != -1 {
			t.Fatalf("serve: exit %d\n%s", code, out)
		}
		return out
	}
	always, alwaysMon := monitoredNATS(t, true)
	deflt, defltMon := monitoredNATS(t, false)

	if out := run(always, "--nats-monitor-url", alwaysMon); strings.Contains(out, "DURABILITY RESTS") ||
		!strings.Contains(out, "checked: the NATS server fsyncs every write") || !strings.Contains(out, "nats-sync-true") {
		t.Errorf("sync_interval: always, checked:\n%s", out)
	}
	if out := run(deflt, "--nats-monitor-url", defltMon); !strings.Contains(out, "this server does not fsync every write") ||
		!strings.Contains(out, "nats-sync-false") || !strings.Contains(out, "sync_interval=2m0s") {
		t.Errorf("default sync_interval, checked:\n%s", out)
	}
	unchecked, _ := monitoredNATS(t, true) // a fresh ledger: a ledger has one writer key
	if out := run(unchecked); !strings.Contains(out, "which keyledger could not check") || !strings.Contains(out, "--nats-monitor-url") {
		t.Errorf("not checked:\n%s", out)
	}
}
