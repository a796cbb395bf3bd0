package tests

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/keyledger/keyledger/crypto/seal"
	"github.com/keyledger/keyledger/crypto/secret"
)

// fastArgon keeps the passphrase tests quick: OWASP's minimum (19 MiB, 2
// passes), the cheapest root init accepts without --unsafe-weak-passphrase;
// the parameters are in the seal file, so serve uses whatever init chose.
var fastArgon = []string{"--argon2-time", "2", "--argon2-memory-kib", "19456"}

// sealedServer is a keyledger serve process started with --root-seal.
type sealedServer struct {
	cmd      *exec.Cmd
	endpoint string
	stderr   *syncBuffer
	done     chan error
}

// serveSealed starts serve on dataDir with the seal file and waits until
// the service (sealed or not) answers, or the process exits.
func serveSealed(t *testing.T, dataDir, sealFile string, port int, env ...string) *sealedServer {
	t.Helper()
	principalsFile := filepath.Join(dataDir, "..", "principals.json")
	if _, err := os.Stat(principalsFile); err != nil { // a test may have written its own
		if err := os.WriteFile(principalsFile, []byte(testPrincipals), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(binary, "serve", "--listen", "127.0.0.1:"+strconv.Itoa(port), "--principals", principalsFile,
		"--data-dir", dataDir, "--root-seal", sealFile, "--log-level", "info",
		"--quota", "CreateKey=1000") // the rotation test makes 200 keys at once
	cmd.Env = append(os.Environ(), env...)
	s := &sealedServer{cmd: cmd, endpoint: "http://127.0.0.1:" + strconv.Itoa(port), stderr: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill(); s.done <- <-s.done })
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-s.done:
			s.done <- err
			return s // exited (e.g. a wrong passphrase)
		default:
		}
		if strings.Contains(s.stderr.String(), "keyledger serving the AWS KMS API") {
			return s // past the start-up responder: the real server answers, sealed or not
		}
		if time.Now().After(deadline) {
			t.Fatalf("keyledger serve did not come up:\n%s", s.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// exitCode waits for the process to exit and returns its code.
func (s *sealedServer) exitCode(t *testing.T) int {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		return 0
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not exit")
		return -1
	}
}

func (s *sealedServer) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.exitCode(t)
}

func (s *sealedServer) ready() int {
	resp, err := http.Get(s.endpoint + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (s *sealedServer) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for s.ready() != 200 {
		if time.Now().After(deadline) {
			t.Fatalf("not ready:\n%s", s.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cliAs runs the binary with a test principal's credentials.
func cliAs(t *testing.T, user string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	c := testCredentials[user]
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+c[0], "AWS_SECRET_ACCESS_KEY="+c[1], "KEYLEDGER_LOG_LEVEL=warn")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// ledgerEventTypes exports the stopped data directory's ledger and returns
// its event lines.
func ledgerLines(t *testing.T, dataDir string) []string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "export")
	if code, msg := cli(t, "audit", "export", "--data-dir", dataDir, "--out", out); code != 0 {
		t.Fatalf("audit export: %d\n%s", code, msg)
	}
	raw, err := os.ReadFile(filepath.Join(out, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(raw)), "\n")
}

func countType(lines []string, typ string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, `"type":"`+typ+`"`) {
			n++
		}
	}
	return n
}

// assertNoPlaintextRoot scans every file under dirs and the logs for the
// root key in raw, base64 and hex form.
func assertNoPlaintextRoot(t *testing.T, root []byte, logs string, dirs ...string) {
	t.Helper()
	forms := [][]byte{root, []byte(base64.StdEncoding.EncodeToString(root)), []byte(base64.RawURLEncoding.EncodeToString(root)),
		[]byte(hex.EncodeToString(root))}
	for _, f := range forms {
		if strings.Contains(logs, string(f)) {
			t.Fatal("the root key is in the logs")
		}
	}
	files := 0
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if d.Name() == "root.key" {
				t.Errorf("a plaintext root key file exists: %s", path)
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			files++
			for _, f := range forms {
				if bytes.Contains(raw, f) {
					t.Errorf("the root key is in %s", path)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if files < 5 {
		t.Fatalf("scanned only %d files", files)
	}
}

// openSealForTest opens a seal file the way serve does, to learn the root
// key the scan looks for.
func openSealForTest(t *testing.T, path string, kek func(*seal.File) []byte) map[uint32][]byte {
	t.Helper()
	f, err := seal.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := f.Open(secretOf(kek(f)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint32][]byte{}
	for v, k := range keys {
		out[v] = bytes.Clone(k.Bytes().Expose())
	}
	return out
}

func TestPassphraseSeal(t *testing.T) {
	dir := t.TempDir()
	sealFile := filepath.Join(dir, "root.seal")
	dataDir := filepath.Join(dir, "data")
	env := []string{"KEYLEDGER_ROOT_PASSPHRASE=correct horse battery staple"}
	cmd := exec.Command(binary, append([]string{"root", "init", "--seal", "passphrase", "--out", sealFile}, fastArgon...)...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("root init: %v\n%s", err, out)
	}
	port := freePort(t)

	// Wrong passphrase: serve refuses to start, and records the attempt.
	wrong := serveSealed(t, dataDir, sealFile, port, "KEYLEDGER_ROOT_PASSPHRASE=wrong horse")
	if code := wrong.exitCode(t); code == 0 {
		t.Fatalf("a wrong passphrase started the service:\n%s", wrong.stderr.String())
	}
	if !strings.Contains(wrong.stderr.String(), "does not open the root key") {
		t.Fatalf("no clear refusal:\n%s", wrong.stderr.String())
	}

	s := serveSealed(t, dataDir, sealFile, port, env...)
	s.waitReady(t)
	c := newClient(s.endpoint, testCredentials["admin"][0], testCredentials["admin"][1])
	ctx := context.Background()
	key, err := c.CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: key.KeyMetadata.KeyId, Plaintext: []byte("sealed at rest")})
	if err != nil {
		t.Fatal(err)
	}
	s.stop(t)

	// A restart with the passphrase opens the same root key.
	s = serveSealed(t, dataDir, sealFile, port, env...)
	s.waitReady(t)
	dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	if err != nil || string(dec.Plaintext) != "sealed at rest" {
		t.Fatalf("decrypt after restart: %v", err)
	}
	s.stop(t)

	lines := ledgerLines(t, dataDir)
	if countType(lines, "RootUnsealFailed.v1") != 1 || countType(lines, "RootUnsealed.v1") != 2 || countType(lines, "RootSealed.v1") != 2 {
		t.Fatalf("seal events: %d failed, %d unsealed, %d sealed", countType(lines, "RootUnsealFailed.v1"),
			countType(lines, "RootUnsealed.v1"), countType(lines, "RootSealed.v1"))
	}
	root := openSealForTest(t, sealFile, func(f *seal.File) []byte {
		return bytes.Clone(f.PassphraseKEK([]byte("correct horse battery staple")).Expose())
	})
	assertNoPlaintextRoot(t, root[1], wrong.stderr.String()+s.stderr.String(), dataDir)
}

func TestShamirSeal(t *testing.T) {
	dir := t.TempDir()
	sealFile := filepath.Join(dir, "root.seal")
	dataDir := filepath.Join(dir, "data")
	code, out := cli(t, "root", "init", "--seal", "shamir", "--shares", "5", "--threshold", "3", "--out", sealFile)
	if code != 0 {
		t.Fatalf("root init: %s", out)
	}
	var shares []string
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, seal.SharePrefix) {
			shares = append(shares, f)
		}
	}
	if len(shares) != 5 {
		t.Fatalf("%d shares printed:\n%s", len(shares), out)
	}
	_, other := cli(t, "root", "init", "--seal", "shamir", "--out", filepath.Join(dir, "other.seal"))
	wrongShare := strings.Fields(other[strings.Index(other, "share 3: ")+len("share 3: "):])[0]

	s := serveSealed(t, dataDir, sealFile, freePort(t))
	c := newClient(s.endpoint, testCredentials["admin"][0], testCredentials["admin"][1])
	ctx := context.Background()
	sealedNow := func(step string) {
		t.Helper()
		if s.ready() != 503 {
			t.Fatalf("%s: /readyz %d, want 503", step, s.ready())
		}
		_, err := c.ListKeys(ctx, &kms.ListKeysInput{})
		wantCode(t, err, "ServiceUnavailableException")
	}
	unseal := func(user, share string) (int, string) {
		t.Helper()
		return cliAs(t, user, "unseal", "--url", s.endpoint, "--share", share)
	}
	sealedNow("at start")

	// Only principals allowed keyledger:Unseal may submit shares.
	if code, out := unseal("bob", shares[0]); code == 0 || !strings.Contains(out, "AccessDeniedException") {
		t.Fatalf("bob submitted a share: %d %s", code, out)
	}
	// Threshold-1 shares: still sealed.
	for i, sh := range shares[:2] {
		if code, out := unseal("admin", sh); code != 0 || !strings.Contains(out, fmt.Sprintf("%d of 3", i+1)) {
			t.Fatalf("share %d: %d %s", i, code, out)
		}
	}
	sealedNow("threshold-1 shares")
	// A wrong share among right ones: refused alone (its check value is
	// not the seal file's), without echoing it; the right ones are kept.
	code, msg := unseal("admin", wrongShare)
	if code == 0 || !strings.Contains(msg, "not one of this root key's unseal shares") || !strings.Contains(msg, "2 share(s) submitted before it are kept") {
		t.Fatalf("wrong share: %d %s", code, msg)
	}
	for _, sh := range append(shares, wrongShare) {
		if strings.Contains(msg, sh) || strings.Contains(msg, strings.TrimPrefix(sh, seal.SharePrefix)) {
			t.Fatalf("the refusal echoes a share: %s", msg)
		}
	}
	sealedNow("after a wrong share")
	if code, out := unseal("admin", shares[3]); code != 0 || !strings.Contains(out, "unsealed") {
		t.Fatalf("threshold share: %d %s", code, out)
	}
	s.waitReady(t)
	key, err := c.CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: key.KeyMetadata.KeyId, Plaintext: []byte("m")})
	if err != nil {
		t.Fatal(err)
	}
	s.stop(t)

	// A restart is sealed again until shares come.
	s = serveSealed(t, dataDir, sealFile, s.port(t))
	c = newClient(s.endpoint, testCredentials["admin"][0], testCredentials["admin"][1])
	sealedNow("after restart")
	for _, sh := range shares[2:] {
		unseal("admin", sh)
	}
	s.waitReady(t)
	if _, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob}); err != nil {
		t.Fatalf("decrypt after unsealing again: %v", err)
	}
	s.stop(t)

	lines := ledgerLines(t, dataDir)
	if countType(lines, "RootUnsealFailed.v1") != 1 || countType(lines, "RootUnsealed.v1") != 2 {
		t.Fatalf("seal events: %d failed, %d unsealed", countType(lines, "RootUnsealFailed.v1"), countType(lines, "RootUnsealed.v1"))
	}
	for _, l := range lines {
		for _, sh := range shares {
			if strings.Contains(l, strings.TrimPrefix(sh, seal.SharePrefix)) {
				t.Fatal("a share is in the ledger")
			}
		}
	}
	root := openSealForTest(t, sealFile, func(*seal.File) []byte {
		var parts [][]byte
		for _, sh := range shares[:3] {
			b, _ := seal.ParseShare(sh)
			parts = append(parts, b)
		}
		k, _ := seal.CombineShares(parts)
		return bytes.Clone(k.Expose())
	})
	assertNoPlaintextRoot(t, root[1], s.stderr.String(), dataDir)
}

func (s *sealedServer) port(t *testing.T) int {
	p, err := strconv.Atoi(s.endpoint[strings.LastIndex(s.endpoint, ":")+1:])
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRootRotationSurvivesKill9 rotates the root key under load, kills the
// server with SIGKILL while it rewraps, and restarts it: the rotation
// resumes and finishes, every ciphertext made before or during it
// decrypts, and the old root version is gone from the seal file.
func TestRootRotationSurvivesKill9(t *testing.T) {
	t.Parallel() // its own servers and directories: runs beside the others
	dir := t.TempDir()
	sealFile := filepath.Join(dir, "root.seal")
	dataDir := filepath.Join(dir, "data")
	env := []string{"KEYLEDGER_ROOT_PASSPHRASE=rotate me, rotate me now"}
	cmd := exec.Command(binary, append([]string{"root", "init", "--seal", "passphrase", "--out", sealFile}, fastArgon...)...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("root init: %v\n%s", err, out)
	}
	port := freePort(t)
	s := serveSealed(t, dataDir, sealFile, port, env...)
	s.waitReady(t)
	c := newClient(s.endpoint, testCredentials["admin"][0], testCredentials["admin"][1])
	ctx := context.Background()

	type sealed struct{ plaintext, blob []byte }
	var mu sync.Mutex
	var made []sealed
	var keys []string
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				k, err := c.CreateKey(ctx, &kms.CreateKeyInput{})
				if err != nil {
					t.Error(err)
					return
				}
				pt := []byte(fmt.Sprintf("before rotation %d/%d", w, i))
				enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: k.KeyMetadata.KeyId, Plaintext: pt})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				keys = append(keys, *k.KeyMetadata.KeyId)
				made = append(made, sealed{pt, enc.CiphertextBlob})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// Load during the rotation: encrypts and new keys.
	stop := make(chan struct{})
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := keys[(w*31+i)%len(keys)]
				if i%10 == 0 {
					k, err := c.CreateKey(ctx, &kms.CreateKeyInput{})
					if err != nil {
						return
					}
					key = *k.KeyMetadata.KeyId
				}
				pt := []byte(fmt.Sprintf("during rotation %d/%d", w, i))
				enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: &key, Plaintext: pt})
				if err != nil {
					return // the server is gone
				}
				mu.Lock()
				made = append(made, sealed{pt, enc.CiphertextBlob})
				mu.Unlock()
			}
		}()
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := len(made)
		mu.Unlock()
		if n >= 50 || time.Now().After(deadline) {
			break // the load is running: rotate under it
		}
	}
	if code, out := cliAs(t, "admin", "root", "rotate", "--url", s.endpoint); code != 0 || !strings.Contains(out, "to=2") {
		t.Fatalf("root rotate: %d %s", code, out)
	}
	if code, out := cliAs(t, "bob", "root", "rotate", "--url", s.endpoint); code == 0 || !strings.Contains(out, "AccessDeniedException") {
		t.Fatalf("bob rotated the root key: %d %s", code, out)
	}
	time.Sleep(150 * time.Millisecond) // kill while the rewrap most likely runs (logged below when it did not)
	_, status := cliAs(t, "admin", "root", "status", "--url", s.endpoint)
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.exitCode(t)
	close(stop)
	wg.Wait()
	t.Logf("status when killed: %s", strings.TrimSpace(status))
	f, err := seal.Load(sealFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Versions) != 2 {
		t.Logf("the rotation finished before the kill (versions %d); the resume path is not exercised this run", len(f.Versions))
	}

	s = serveSealed(t, dataDir, sealFile, port, env...)
	s.waitReady(t)
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, out := cliAs(t, "admin", "root", "status", "--url", s.endpoint)
		if strings.Contains(out, "state=idle") && strings.Contains(out, "root_versions=[2]") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotation did not finish: %s\n%s", out, s.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, m := range made {
		dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: m.blob})
		if err != nil || !bytes.Equal(dec.Plaintext, m.plaintext) {
			t.Fatalf("a ciphertext does not decrypt after the rotation: %v", err)
		}
	}
	s.stop(t)
	f, err = seal.Load(sealFile)
	if err != nil || len(f.Versions) != 1 || f.Versions[0].Version != 2 || f.Current != 2 {
		t.Fatalf("seal file after rotation: %+v %v", f, err)
	}
	if code, out := cli(t, "audit", "verify", "--data-dir", dataDir); code != 0 {
		t.Fatalf("audit verify: %d\n%s", code, out)
	}
	lines := ledgerLines(t, dataDir)
	if countType(lines, "RootRotationStarted.v1") != 1 || countType(lines, "RootVersionRetired.v1") != 1 ||
		countType(lines, "MaterialRewrapped.v1") < len(keys) {
		t.Fatalf("rotation events: %d started, %d retired, %d rewrapped for %d keys", countType(lines, "RootRotationStarted.v1"),
			countType(lines, "RootVersionRetired.v1"), countType(lines, "MaterialRewrapped.v1"), len(keys))
	}
	t.Logf("%d ciphertexts decrypt after rotation; %d materials rewrapped", len(made), countType(lines, "MaterialRewrapped.v1"))
}

func secretOf(b []byte) secret.Bytes { defer clear(b); return secret.New(b) }
