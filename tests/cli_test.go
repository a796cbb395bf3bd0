package tests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/keyledger/keyledger/gateway/principals"
	"github.com/nats-io/nats.go"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/ledger/writer"
)

var binary string // the keyledger binary, built once

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "keyledger-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "keyledger")
	out, err := exec.Command("go", "build", "-o", binary, "../cmd/keyledger").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building keyledger: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cli runs the keyledger binary and returns its exit code and output.
func cli(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "KEYLEDGER_LOG_LEVEL=warn")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// rawMsg is a stored ledger message: its bytes and the writer's signature.
type rawMsg struct {
	chain       string
	data        []byte
	writer, sig string
}

// ledgerMessages makes a ledger of single-event messages and returns them.
func ledgerMessages(t *testing.T) []rawMsg {
	in := start(t)
	ctx := context.Background()
	k := in.createKey("tamper")
	for i := 0; i < 6; i++ {
		in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x")})
	}
	var msgs []rawMsg
	if err := in.node.Ledger.Messages(ctx, func(m chain.Message) error {
		msgs = append(msgs, rawMsg{chain: m.Chain, data: bytes.Clone(m.Data), writer: m.Writer, sig: m.Signature})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	in.down()
	if len(msgs) < 7 {
		t.Fatalf("only %d messages", len(msgs))
	}
	return msgs
}

// writeCopy writes msgs as the ledger stream of a new data directory.
func writeCopy(t *testing.T, msgs []rawMsg) string {
	t.Helper()
	dir := t.TempDir()
	srv, err := embedded.Start(embedded.Options{DataDir: filepath.Join(dir, "jetstream")})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, _ := srv.Connect("copy")
	defer nc.Close()
	if _, err := ledger.Open(context.Background(), nc, ledger.Config{}); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		subject := "keyledger.events"
		if m.chain != "" {
			subject += "." + m.chain
		}
		msg := nats.NewMsg(subject)
		msg.Data = m.data
		msg.Header.Set(writer.HeaderWriter, m.writer)
		msg.Header.Set(writer.HeaderSignature, m.sig)
		if _, err := nc.RequestMsg(msg, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestAuditVerifyCatchesTampering tampers with copies of a real ledger and
// runs `keyledger audit verify --data-dir` on each.
func TestAuditVerifyCatchesTampering(t *testing.T) {
	msgs := ledgerMessages(t)
	code, out := cli(t, "audit", "verify", "--data-dir", writeCopy(t, msgs))
	if code != 0 || !strings.Contains(out, fmt.Sprintf("OK: %d events verified", len(msgs))) {
		t.Fatalf("intact copy: exit %d\n%s", code, out)
	}
	clone := func() []rawMsg { return append([]rawMsg(nil), msgs...) }
	tests := []struct {
		name    string
		tamper  func() []rawMsg
		wantSeq int
	}{
		// Messages 4 and 5 (stream sequences 5 and 6) are Encrypts, one
		// after the other on the writer's data chain (CreateKey, message 2,
		// is on a control chain).
		{"changed byte", func() []rawMsg {
			m := clone()
			m[4].data = bytes.Replace(m[4].data, []byte(`"op":"Encrypt"`), []byte(`"op":"Encrypz"`), 1)
			return m
		}, 5},
		{"dropped event", func() []rawMsg { m := clone(); return append(m[:4:4], m[5:]...) }, 5},
		{"swapped events", func() []rawMsg { m := clone(); m[4], m[5] = m[5], m[4]; return m }, 5},
		{"inserted event", func() []rawMsg { m := clone(); return append(append(m[:5:5], m[1]), m[5:]...) }, 6},
	}
	for i := 3; i <= 6; i++ {
		if msgs[i].chain != msgs[1].chain {
			t.Fatalf("message %d is on chain %q, not the writer's data chain %q", i, msgs[i].chain, msgs[1].chain)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tampered := tt.tamper()
			if tt.name == "changed byte" && bytes.Equal(tampered[4].data, msgs[4].data) {
				t.Fatal("the tamper changed nothing")
			}
			code, out := cli(t, "audit", "verify", "--data-dir", writeCopy(t, tampered))
			// A changed or moved message no longer carries a valid signature for
			// its place; what follows it no longer links. All are quarantined.
			if code != 3 || !strings.Contains(out, fmt.Sprintf("first quarantined: stream sequence %d:", tt.wantSeq)) ||
				!strings.Contains(out, "signature does not verify") {
				t.Fatalf("exit %d\n%s", code, out)
			}
		})
	}
}

// TestAuditVerifyOnRunningDeployment verifies through --nats-url while the
// service runs.
func TestAuditVerifyOnRunningDeployment(t *testing.T) {
	port := freePort(t)
	startNATS(t, t.TempDir(), port)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	in := start(t, withNATS(url))
	in.createKey("a")
	in.createKey("b")
	head := in.node.Ledger.Head()
	code, out := cli(t, "audit", "verify", "--nats-url", url)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("OK: %d events verified", head.Count)) || !strings.Contains(out, head.Hash.String()) {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

// serveProcess starts `keyledger serve` and waits until it answers.
func serveProcess(t *testing.T, dataDir string, port int) *exec.Cmd {
	t.Helper()
	principalsFile := filepath.Join(t.TempDir(), "principals.json")
	if err := os.WriteFile(principalsFile, []byte(testPrincipals), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "serve", "--listen", "127.0.0.1:"+strconv.Itoa(port), "--principals", principalsFile)
	cmd.Env = append(os.Environ(), "KEYLEDGER_DATA_DIR="+dataDir, "KEYLEDGER_LOG_LEVEL=warn")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	admin := testCredentials["admin"]
	c := newClient("http://127.0.0.1:"+strconv.Itoa(port), admin[0], admin[1])
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := c.ListKeys(context.Background(), &kms.ListKeysInput{}); err == nil {
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("keyledger serve did not come up:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestKill9LosesNothingAcknowledged kills the server with SIGKILL in the
// middle of load: every Encrypt that was answered still decrypts after the
// restart, and the chain verifies.
func TestKill9LosesNothingAcknowledged(t *testing.T) {
	t.Parallel() // its own servers and directories: runs beside the others
	dataDir := t.TempDir()
	port := freePort(t)
	cmd := serveProcess(t, dataDir, port)
	endpoint := "http://127.0.0.1:" + strconv.Itoa(port)
	admin := testCredentials["admin"]
	c := newClient(endpoint, admin[0], admin[1])
	ctx := context.Background()
	created, err := c.CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	key := created.KeyMetadata.KeyId

	type acked struct{ plaintext, blob []byte }
	var mu sync.Mutex
	var done []acked
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				pt := []byte(fmt.Sprintf("worker %d message %d", w, i))
				out, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: key, Plaintext: pt})
				if err != nil {
					return // the server is gone
				}
				mu.Lock()
				done = append(done, acked{pt, out.CiphertextBlob})
				mu.Unlock()
			}
		}(w)
	}
	// Kill in the middle of the load, once enough was acknowledged to
	// matter (a condition, not a fixed time: this machine's speed varies).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := len(done)
		mu.Unlock()
		if n >= 200 || time.Now().After(deadline) {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	close(stop)
	wg.Wait()
	if len(done) < 50 {
		t.Fatalf("only %d requests acknowledged before the kill", len(done))
	}

	cmd2 := serveProcess(t, dataDir, port)
	for _, a := range done {
		out, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: a.blob})
		if err != nil || !bytes.Equal(out.Plaintext, a.plaintext) {
			t.Fatalf("an acknowledged ciphertext is lost after kill -9: %v", err)
		}
	}
	// History on the stopped server's directory comes after stopping it (below).
	// A running server holds the data directory.
	if code, out := cli(t, "audit", "verify", "--data-dir", dataDir); code != 1 || !strings.Contains(out, "in use") {
		t.Fatalf("verify on a running server's directory: exit %d\n%s", code, out)
	}
	cmd2.Process.Signal(syscall.SIGTERM)
	cmd2.Wait()
	code, out := cli(t, "audit", "verify", "--data-dir", dataDir)
	if code != 0 {
		t.Fatalf("chain after kill -9: exit %d\n%s", code, out)
	}
	var n int
	fmt.Sscanf(out, "OK: %d events verified", &n)
	code, tail := cli(t, "audit", "tail", "--data-dir", dataDir, "--event", "Encrypt", "--count", "5")
	if code != 0 || strings.Count(tail, "\n") != 5 || !strings.Contains(tail, `"op":"Encrypt"`) {
		t.Fatalf("audit tail on a data directory: exit %d\n%s", code, tail)
	}
	// CreateKey, every acknowledged Encrypt, and the restart's ListKeys and Decrypts.
	if n < 1+2*len(done) {
		t.Fatalf("%d events in the ledger for %d acknowledged encrypts", n, len(done))
	}
	t.Logf("%d encrypts acknowledged before SIGKILL; all decrypt after restart; %d events verify", len(done), n)
}

func TestServeFlagsFromEnvironment(t *testing.T) {
	dataDir := t.TempDir()
	port := freePort(t)
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(os.Environ(), "KEYLEDGER_DATA_DIR="+dataDir, "KEYLEDGER_LISTEN=127.0.0.1:"+strconv.Itoa(port),
		"KEYLEDGER_ACCOUNT=444455556666", "KEYLEDGER_REGION=eu-west-1", "KEYLEDGER_LOG_LEVEL=warn")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	// No principals file: serve generates an admin user in the data directory.
	var dir *principals.Directory
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if dir, err = principals.Load(filepath.Join(dataDir, "principals.json")); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("generated principals: %v", err)
	}
	users := dir.Users()
	if len(users) != 1 || users[0].ARN != "arn:aws:iam::444455556666:user/admin" || len(users[0].AccessKeyIDs()) != 1 {
		t.Fatalf("generated principals: %+v", users)
	}
	adminKey := users[0].AccessKeyIDs()[0]
	_, adminSecret, _ := dir.Lookup(adminKey)
	c := kms.New(kms.Options{Region: "eu-west-1", BaseEndpoint: aws.String("http://127.0.0.1:" + strconv.Itoa(port)),
		Credentials: credentials.NewStaticCredentialsProvider(adminKey, string(adminSecret.Expose()), ""), RetryMaxAttempts: 1})
	var out *kms.CreateKeyOutput
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if out, err = c.CreateKey(context.Background(), &kms.CreateKeyInput{}); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(*out.KeyMetadata.Arn, "arn:aws:kms:eu-west-1:444455556666:key/") {
		t.Fatalf("ARN %s does not use the configured account and region", *out.KeyMetadata.Arn)
	}
	st, err := os.Stat(filepath.Join(dataDir, "root.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("generated root key: %v %v", st, err)
	}
}
