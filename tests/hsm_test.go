package tests

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/keyledger/keyledger/crypto/hsm"
	"github.com/keyledger/keyledger/crypto/seal"
	"github.com/keyledger/keyledger/crypto/secret"
)

const softHSMModule = "/usr/lib/softhsm/libsofthsm2.so"

// softHSM makes a fresh SoftHSM2 token labelled "keyledger" (user PIN
// 1234) in a temporary directory and returns the environment that selects
// it, or skips the test when SoftHSM2 is not installed.
func softHSM(t *testing.T) []string {
	t.Helper()
	util, err := exec.LookPath("softhsm2-util")
	if _, serr := os.Stat(softHSMModule); err != nil || serr != nil {
		t.Skip("SoftHSM2 is not installed (apt-get install softhsm2); the PKCS#11 seal is not tested")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.MkdirAll(filepath.Join(dir, "tokens"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+filepath.Join(dir, "tokens")+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	out, err := exec.Command(util, "--init-token", "--free", "--label", "keyledger", "--pin", "1234", "--so-pin", "5678").CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util: %v\n%s", err, out)
	}
	return []string{"SOFTHSM2_CONF=" + conf}
}

func TestPKCS11Seal(t *testing.T) {
	env := softHSM(t)
	dir := t.TempDir()
	sealFile := filepath.Join(dir, "root.seal")
	dataDir := filepath.Join(dir, "data")
	pin := "KEYLEDGER_HSM_PIN=1234"
	cmd := exec.Command(binary, "root", "init", "--seal", "pkcs11", "--pkcs11-module", softHSMModule, "--pkcs11-token", "keyledger", "--out", sealFile)
	cmd.Env = append(append(os.Environ(), env...), pin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("root init: %v\n%s", err, out)
	}
	f, err := seal.Load(sealFile)
	if err != nil {
		t.Fatal(err)
	}
	v1 := f.Versions[0].Label
	if f.Versions[0].Wrapped != nil {
		t.Fatal("a pkcs11 seal file holds key bytes")
	}
	assertHSMKey(t, v1, true)

	port := freePort(t)
	// Restart needs the PIN: without one (no terminal to ask on) or with a
	// wrong one, serve does not start.
	for _, bad := range [][]string{env, append(env, "KEYLEDGER_HSM_PIN=9999")} {
		s := serveSealed(t, dataDir, sealFile, port, bad...)
		if code := s.exitCode(t); code == 0 {
			t.Fatalf("serve started without the right PIN:\n%s", s.stderr.String())
		}
	}

	s := serveSealed(t, dataDir, sealFile, port, append(env, pin)...)
	s.waitReady(t)
	c := newClient(s.endpoint, testCredentials["admin"][0], testCredentials["admin"][1])
	ctx := context.Background()
	key, err := c.CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: key.KeyMetadata.KeyId, Plaintext: []byte("in the HSM")})
	if err != nil {
		t.Fatal(err)
	}
	s.stop(t)

	s = serveSealed(t, dataDir, sealFile, port, append(env, pin)...)
	s.waitReady(t)
	if dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob}); err != nil || string(dec.Plaintext) != "in the HSM" {
		t.Fatalf("decrypt after restart: %v", err)
	}
	// Rotation makes a new HSM key, rewraps in the HSM, and destroys the old key.
	if code, out := cliAs(t, "admin", "root", "rotate", "--url", s.endpoint); code != 0 {
		t.Fatalf("rotate: %s", out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, out := cliAs(t, "admin", "root", "status", "--url", s.endpoint)
		if strings.Contains(out, "state=idle") && strings.Contains(out, "root_versions=[2]") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotation did not finish: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob}); err != nil || string(dec.Plaintext) != "in the HSM" {
		t.Fatalf("decrypt after rotation: %v", err)
	}
	s.stop(t)
	f, _ = seal.Load(sealFile)
	if len(f.Versions) != 1 || f.Versions[0].Version != 2 {
		t.Fatalf("seal file after rotation: %+v", f.Versions)
	}
	assertHSMKey(t, v1, false)
	assertHSMKey(t, f.Versions[0].Label, true)

	lines := ledgerLines(t, dataDir)
	if countType(lines, "RootUnsealFailed.v1") != 1 || countType(lines, "RootUnsealed.v1") != 2 || countType(lines, "RootVersionRetired.v1") != 1 {
		t.Fatalf("events: %d failed, %d unsealed, %d retired", countType(lines, "RootUnsealFailed.v1"),
			countType(lines, "RootUnsealed.v1"), countType(lines, "RootVersionRetired.v1"))
	}
	if _, err := os.Stat(filepath.Join(dataDir, "root.key")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a plaintext root key file exists")
	}
}

// assertHSMKey checks that the token holds (or no longer holds) the key
// labelled label, sensitive and non-extractable: the token refuses to
// reveal its value.
func assertHSMKey(t *testing.T, label string, want bool) {
	t.Helper()
	tok, err := hsm.Open(softHSMModule, "keyledger", secret.New([]byte("1234")))
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	sensitive, extractable, readable, err := tok.Attributes(label)
	if !want {
		if !errors.Is(err, hsm.ErrNoKey) {
			t.Fatalf("retired key %s is still on the token (%v)", label, err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if !sensitive || extractable || readable {
		t.Fatalf("root key %s: sensitive %v, extractable %v, value readable %v", label, sensitive, extractable, readable)
	}
}
