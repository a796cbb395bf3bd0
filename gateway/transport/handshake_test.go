package transport

import (
	"crypto/tls"
	"net"
	"testing"
	"time"
)

// TestSilentConnectionsDoNotStopAccepting models fasthttp over its
// connection cap, which writes a 503 on each new connection in its accept
// loop: TCP connections that never send a ClientHello must not hold that
// loop, so a real client is still served.
func TestSilentConnectionsDoNotStopAccepting(t *testing.T) {
	cfg := testServerConfig(t)
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := NewHandshakeListener(raw, cfg, time.Minute, 100)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
			c.Close()
		}
	}()
	for range 3 {
		silent, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer silent.Close()
	}
	done := make(chan error, 1)
	go func() {
		c, err := tls.Dial("tcp", raw.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			_, err = c.Read(make([]byte, 16))
			c.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the real client: %v", err)
		}
	case <-time.After(20 * time.Second): // liveness, not speed: the silent connections hold for a minute
		t.Fatal("a real client was not served while silent connections were open")
	}
}

func testServerConfig(t *testing.T) *tls.Config {
	t.Helper()
	f, err := DevCertificate(t.TempDir(), []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}
}
