package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestNATSListenNeedsTLS: --nats-listen on a non-loopback address without
// TLS is refused with the reason and the way out; with TLS (the API's
// certificate, here --tls-self-signed) a nats.go client trusting the CA
// connects over TLS as the audit identity and `audit verify --nats-ca`
// reads the ledger there, while a plaintext client is refused.
func TestNATSListenNeedsTLS(t *testing.T) {
	code, out := cli(t, "serve", "--data-dir", t.TempDir(), "--nats-listen", "0.0.0.0:0")
	if code != 2 || !strings.Contains(out, "refusing to serve NATS without TLS on 0.0.0.0:0") || !strings.Contains(out, "--insecure-nats") {
		t.Fatalf("plaintext NATS on every interface: exit %d: %s", code, out)
	}

	dataDir := t.TempDir()
	principalsFile := filepath.Join(t.TempDir(), "principals.json")
	if err := os.WriteFile(principalsFile, []byte(testPrincipals), 0o600); err != nil {
		t.Fatal(err)
	}
	natsPort := freePort(t)
	cmd := exec.Command(binary, "serve", "--data-dir", dataDir, "--listen", "127.0.0.1:"+strconv.Itoa(freePort(t)),
		"--principals", principalsFile, "--tls-self-signed", "--nats-listen", "0.0.0.0:"+strconv.Itoa(natsPort))
	var log syncBuffer
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(log.String(), "keyledger serving"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", log.String())
		}
	}
	ca := filepath.Join(dataDir, "tls", "ca.pem")
	seed := filepath.Join(dataDir, "nats-audit.nk")
	url := "nats://127.0.0.1:" + strconv.Itoa(natsPort)
	if !strings.Contains(log.String(), "--nats-ca "+ca) {
		t.Errorf("the start-up log does not say how to trust the CA:\n%s", log.String())
	}

	auth, err := nats.NkeyOptionFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, auth, nats.RootCAs(ca))
	if err != nil {
		t.Fatalf("TLS client with the CA: %v", err)
	}
	st, err := nc.TLSConnectionState()
	if err != nil || !st.HandshakeComplete {
		t.Fatalf("not a TLS connection: %v", err)
	}
	if _, err := nc.Request("$JS.API.STREAM.NAMES", nil, 5*time.Second); err != nil {
		t.Fatalf("the audit identity over TLS: %v", err)
	}
	nc.Close()

	if nc, err := nats.Connect(url, auth); err == nil {
		nc.Close()
		t.Fatal("a plaintext client was served")
	}
	if nc, err := nats.Connect(url, auth, nats.Secure()); err == nil { // TLS, but not trusting the CA
		nc.Close()
		t.Fatal("a client that does not trust the certificate connected")
	}
	if code, out := cli(t, "audit", "verify", "--nats-url", url, "--nats-creds", seed, "--nats-ca", ca); code != 0 {
		t.Fatalf("audit verify over TLS: %d %s", code, out)
	}
}
