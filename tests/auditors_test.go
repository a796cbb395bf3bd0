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

// TestNamedAuditorsReadAsThemselves: `serve --auditors` gives each named
// auditor its own seed file (logged at start), with which `audit verify`
// reads the ledger through NATS; the default auditor's nats-audit.nk still
// works; and one auditor's answers never reach another's inbox, here the
// live feed of audit tail (an account each). A bad name is refused.
func TestNamedAuditorsReadAsThemselves(t *testing.T) {
	if code, out := cli(t, "serve", "--data-dir", t.TempDir(), "--auditors", "acme,Big.Four"); code != 2 || !strings.Contains(out, "auditor name") {
		t.Fatalf("--auditors Big.Four: exit %d: %s", code, out)
	}
	dataDir := t.TempDir()
	principalsFile := filepath.Join(t.TempDir(), "principals.json")
	if err := os.WriteFile(principalsFile, []byte(testPrincipals), 0o600); err != nil {
		t.Fatal(err)
	}
	url := "nats://127.0.0.1:" + strconv.Itoa(freePort(t))
	cmd := exec.Command(binary, "serve", "--data-dir", dataDir, "--listen", "127.0.0.1:"+strconv.Itoa(freePort(t)),
		"--principals", principalsFile, "--nats-listen", strings.TrimPrefix(url, "nats://"), "--auditors", "acme, bigfour")
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
	for _, name := range []string{"acme", "bigfour"} {
		seed := filepath.Join(dataDir, "nats-audit-"+name+".nk")
		if !strings.Contains(log.String(), seed) {
			t.Errorf("the start-up log does not name %s:\n%s", seed, log.String())
		}
		if fi, err := os.Stat(seed); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", seed, fi, err)
		}
	}
	for _, seed := range []string{"nats-audit-acme.nk", "nats-audit-bigfour.nk", "nats-audit.nk"} {
		if code, out := cli(t, "audit", "verify", "--nats-url", url, "--nats-creds", filepath.Join(dataDir, seed)); code != 0 || !strings.Contains(out, "OK:") {
			t.Fatalf("audit verify as %s: %d %s", seed, code, out)
		}
	}

	connect := func(seed string) *nats.Conn {
		auth, err := nats.NkeyOptionFromSeed(filepath.Join(dataDir, seed))
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(url, auth)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	acme, bigfour := connect("nats-audit-acme.nk"), connect("nats-audit-bigfour.nk")
	feed, err := acme.SubscribeSync("keyledger.audit.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := acme.Flush(); err != nil {
		t.Fatal(err)
	}
	own := bigfour.NewInbox()
	answers, err := bigfour.SubscribeSync(own)
	if err != nil {
		t.Fatal(err)
	}
	for _, reply := range []string{"keyledger.audit.KEYLEDGER.x.Encrypt", own} {
		if err := bigfour.PublishRequest("$JS.API.DIRECT.GET.KEYLEDGER", reply, []byte(`{"seq":1}`)); err != nil {
			t.Fatal(err)
		}
	}
	if m, err := answers.NextMsg(5 * time.Second); err != nil || len(m.Data) == 0 {
		t.Fatalf("bigfour's own direct get: %v", err)
	}
	if m, err := feed.NextMsg(500 * time.Millisecond); err == nil {
		t.Fatalf("bigfour had the server publish into acme's live feed: %s %q", m.Subject, m.Data)
	}
}
