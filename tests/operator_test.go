package tests

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyledger/keyledger/crypto/seal"
)

// frank is account B's administrator with every keyledger action: what an
// account's own admin holds, and not the operator.
var frank = [2]string{"AKIAFRANK00000001", "frank-secret-00000000001"}

// principalsWithFrank is testPrincipals plus frank (444455556666,
// kms:* and keyledger:* on *).
func principalsWithFrank(t *testing.T) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal([]byte(testPrincipals), &doc); err != nil {
		t.Fatal(err)
	}
	users := doc["accounts"].(map[string]any)[otherAccount].(map[string]any)["users"].(map[string]any)
	users["frank"] = map[string]any{
		"accessKeys": []any{map[string]any{"id": frank[0], "secret": frank[1]}},
		"policies": []any{map[string]any{"Version": "2012-10-17", "Statement": []any{
			map[string]any{"Effect": "Allow", "Action": []string{"kms:*", "keyledger:*"}, "Resource": "*"}}}},
	}
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// cliWith runs the binary with the given access key and secret.
func cliWith(t *testing.T, creds [2]string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+creds[0], "AWS_SECRET_ACCESS_KEY="+creds[1], "KEYLEDGER_LOG_LEVEL=warn")
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

func printedShares(t *testing.T, out string) []string {
	t.Helper()
	var shares []string
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, seal.SharePrefix) {
			shares = append(shares, f)
		}
	}
	return shares
}

// TestServiceWideOperationsOnlyForOperator: unsealing and root key
// rotation act on every account's keys, so a keyledger:* policy in another
// account (frank, account B) gets AccessDenied for unseal shares, unseal
// progress, rotation and its status; the operator account (the generated
// admin's by default, or --operator-account) may. A share that is not the
// seal's is refused alone and the good ones before it are kept. An
// operator account without principals stops a Shamir-sealed start.
func TestServiceWideOperationsOnlyForOperator(t *testing.T) {
	dir := t.TempDir()
	sealFile := filepath.Join(dir, "root.seal")
	dataDir := filepath.Join(dir, "data")
	if err := os.WriteFile(filepath.Join(dir, "principals.json"), principalsWithFrank(t), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out := cli(t, "root", "init", "--seal", "shamir", "--shares", "5", "--threshold", "3", "--out", sealFile)
	shares := printedShares(t, out)
	if code != 0 || len(shares) != 5 {
		t.Fatalf("root init: %d %s", code, out)
	}
	_, other := cli(t, "root", "init", "--seal", "shamir", "--out", filepath.Join(dir, "other.seal"))
	admin := testCredentials["admin"]
	port := freePort(t)

	s := serveSealed(t, dataDir, sealFile, port)
	denied := func(who [2]string, args ...string) {
		t.Helper()
		code, out := cliWith(t, who, args...)
		if code == 0 || !strings.Contains(out, "AccessDeniedException") || !strings.Contains(out, "operator account") {
			t.Fatalf("%s %v: %d %s", who[0], args, code, out)
		}
	}
	unseal := func(who [2]string, share, want string) {
		t.Helper()
		code, out := cliWith(t, who, "unseal", "--url", s.endpoint, "--share", share)
		if !strings.Contains(out, want) || (code == 0) != !strings.Contains(want, "Exception") {
			t.Fatalf("unseal as %s: %d %s; want %q", who[0], code, out, want)
		}
	}
	denied(frank, "unseal", "--url", s.endpoint, "--share", shares[0])
	unseal(admin, shares[0], "1 of 3")
	// A junk share (another seal's, same index as one not yet given) is
	// refused alone; the one before it is kept.
	unseal(admin, printedShares(t, other)[1], "ValidationException")
	unseal(admin, shares[1], "2 of 3")
	unseal(admin, shares[2], "unsealed")
	s.waitReady(t)
	denied(frank, "root", "rotate", "--url", s.endpoint)
	denied(frank, "root", "status", "--url", s.endpoint)
	if code, out := cliWith(t, admin, "root", "status", "--url", s.endpoint); code != 0 || !strings.Contains(out, "state=idle") {
		t.Fatalf("the operator's rotation status: %d %s", code, out)
	}
	s.stop(t)

	// --operator-account names account B: frank may, admin may not.
	s = serveSealed(t, dataDir, sealFile, port, "KEYLEDGER_OPERATOR_ACCOUNT="+otherAccount)
	denied(admin, "unseal", "--url", s.endpoint, "--share", shares[0])
	for i, sh := range shares[2:] {
		want := fmt.Sprintf("%d of 3", i+1)
		if i == 2 {
			want = "unsealed"
		}
		unseal(frank, sh, want)
	}
	s.waitReady(t)
	denied(admin, "root", "status", "--url", s.endpoint)
	s.stop(t)

	// Nobody in the operator account: a Shamir seal could never open.
	s = serveSealed(t, dataDir, sealFile, port, "KEYLEDGER_OPERATOR_ACCOUNT=999999999999")
	if code := s.exitCode(t); code == 0 || !strings.Contains(s.stderr.String(), "operator account 999999999999 has no principals") {
		t.Fatalf("started with an empty operator account: %d\n%s", code, s.stderr.String())
	}

	lines := ledgerLines(t, dataDir)
	if n := countType(lines, "RootUnsealFailed.v1"); n != 1 {
		t.Fatalf("%d failed unseal attempts recorded, want the junk share's 1", n)
	}
	refused := 0
	for _, l := range lines {
		if strings.Contains(l, `"op":"UnsealRoot"`) && strings.Contains(l, "AccessDenied") {
			refused++
		}
	}
	if refused != 2 {
		for _, l := range lines {
			if strings.Contains(l, "Unseal") {
				t.Log(l)
			}
		}
		t.Fatalf("%d refused unseal shares recorded, want 2 (frank, then admin)", refused)
	}
}

// TestRootInitPassphraseMinimums: root init refuses a passphrase under 12
// characters and Argon2id below OWASP's minimum, saying what is needed,
// unless --unsafe-weak-passphrase says otherwise (with a warning).
func TestRootInitPassphraseMinimums(t *testing.T) {
	dir := t.TempDir()
	files := 0
	init := func(pass string, args ...string) (int, string) {
		t.Helper()
		files++
		cmd := exec.Command(binary, append([]string{"root", "init", "--seal", "passphrase", "--out",
			filepath.Join(dir, fmt.Sprintf("root-%d.seal", files))}, args...)...)
		cmd.Env = append(os.Environ(), "KEYLEDGER_ROOT_PASSPHRASE="+pass)
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
	long := "correct horse battery staple"
	for _, tc := range []struct {
		pass string
		args []string
		want string
	}{
		{"x", nil, "at least 12"},
		{"eleven char", nil, "at least 12"},
		{long, []string{"--argon2-memory-kib", "8", "--argon2-time", "1"}, "OWASP"},
		{long, []string{"--argon2-memory-kib", "19456", "--argon2-time", "1"}, "OWASP"},
	} {
		if code, out := init(tc.pass, tc.args...); code == 0 || !strings.Contains(out, tc.want) || !strings.Contains(out, "--unsafe-weak-passphrase") {
			t.Errorf("%q %v: %d %s", tc.pass, tc.args, code, out)
		}
	}
	if code, out := init(long, fastArgon...); code != 0 {
		t.Fatalf("OWASP's minimum refused: %s", out)
	}
	if code, out := init("x", "--argon2-memory-kib", "8", "--argon2-time", "1", "--unsafe-weak-passphrase"); code != 0 || !strings.Contains(out, "WARNING") {
		t.Fatalf("--unsafe-weak-passphrase: %d %s", code, out)
	}
}

// TestPassphraseLeavesTheEnvironment: serve takes KEYLEDGER_ROOT_PASSPHRASE
// out of its environment as it starts: once serving, /proc/<pid>/environ
// (the block the kernel gave it, readable by the same user for the
// process's life) holds neither the passphrase nor the variable.
func TestPassphraseLeavesTheEnvironment(t *testing.T) {
	if _, err := os.Stat("/proc/self/environ"); err != nil {
		t.Skip("no /proc here")
	}
	dir := t.TempDir()
	sealFile := filepath.Join(dir, "root.seal")
	const pass = "a passphrase nobody else should read 7f3a"
	cmd := exec.Command(binary, append([]string{"root", "init", "--seal", "passphrase", "--out", sealFile}, fastArgon...)...)
	cmd.Env = append(os.Environ(), "KEYLEDGER_ROOT_PASSPHRASE="+pass)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("root init: %v\n%s", err, out)
	}
	s := serveSealed(t, filepath.Join(dir, "data"), sealFile, freePort(t), "KEYLEDGER_ROOT_PASSPHRASE="+pass, "KEYLEDGER_HSM_PIN=4321-pin-4321")
	s.waitReady(t)
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", s.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{pass, "KEYLEDGER_ROOT_PASSPHRASE", "4321-pin-4321", "KEYLEDGER_HSM_PIN"} {
		if bytes.Contains(environ, []byte(secret)) {
			t.Errorf("/proc/<pid>/environ of the running server still holds %q", secret)
		}
	}
	if !bytes.Contains(environ, []byte("PATH=")) {
		t.Fatalf("the environment lost more than the secrets: %q", environ)
	}
}
