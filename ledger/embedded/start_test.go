package embedded

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// TestStartFailsAtOnceWhenThePortIsTaken: a server that cannot listen
// fails Start with nats-server's own reason, as soon as it gives it,
// instead of "did not become ready" after the whole readiness wait.
func TestStartFailsAtOnceWhenThePortIsTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	srv, err := Start(Options{DataDir: filepath.Join(dir, "js"), AuthDir: dir, Listen: taken.Addr().String(), NoSync: true})
	if err == nil {
		srv.Shutdown()
		t.Fatal("started on a port another listener holds")
	}
	if !strings.Contains(err.Error(), "listen") {
		t.Errorf("error %q does not name the listen failure", err)
	}
}

// TestListenOnPortZeroTakesAFreePort: ":0" means any free port, as for a
// Go listener, not nats-server's default 4222, so two servers on one
// machine both start.
func TestListenOnPortZeroTakesAFreePort(t *testing.T) {
	var urls []string
	for range 2 {
		dir := t.TempDir()
		srv, err := Start(Options{DataDir: filepath.Join(dir, "js"), AuthDir: dir, Listen: "127.0.0.1:0", NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
		urls = append(urls, srv.ClientURL())
	}
	if urls[0] == urls[1] || strings.HasSuffix(urls[0], ":4222") {
		t.Fatalf("client URLs %v: want two different free ports", urls)
	}
}
