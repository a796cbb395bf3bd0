package backend

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// monitoredServer starts a nats-server with JetStream and a monitoring
// port, and returns its monitoring URL.
func monitoredServer(t *testing.T, syncAlways bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	opts := &server.Options{ServerName: "n-" + strconv.FormatBool(syncAlways), Host: "127.0.0.1", Port: -1,
		HTTPHost: "127.0.0.1", HTTPPort: port, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true}
	if syncAlways {
		opts.SyncAlways = true
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(ns.Shutdown)
	return "http://127.0.0.1:" + strconv.Itoa(port)
}

func TestCheckSyncReadsTheServersSetting(t *testing.T) {
	always, deflt := monitoredServer(t, true), monitoredServer(t, false)
	got, err := CheckSync(context.Background(), nil, []string{always, deflt + "/varz"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[0].SyncAlways || got[0].Server != "n-true" || got[1].SyncAlways || got[1].Server != "n-false" {
		t.Fatalf("reports %+v", got)
	}
	if got[1].SyncInterval != 2*time.Minute {
		t.Fatalf("default sync interval read as %v", got[1].SyncInterval)
	}
	for _, bad := range []string{"n1:8222", "nats://127.0.0.1:4222", strings.TrimPrefix(always, "http://")} {
		if _, err := CheckSync(context.Background(), nil, []string{bad}); err == nil {
			t.Errorf("%q accepted as a monitoring URL", bad)
		}
	}
	// A port that answers something else is refused, not read as "no fsync".
	if _, err := CheckSync(context.Background(), nil, []string{always + "/nothing-here/"}); err == nil {
		t.Error("a 404 was taken for an answer")
	}
}
