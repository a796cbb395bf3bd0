package tests

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/keyledger/keyledger/gateway/awsjson"
)

// serveWith starts `keyledger serve` on a loopback port with the test
// principals and extra flags, and waits until it serves.
func serveWith(t *testing.T, args ...string) *sealedServer {
	t.Helper()
	dataDir := t.TempDir()
	principalsFile := filepath.Join(t.TempDir(), "principals.json")
	if err := os.WriteFile(principalsFile, []byte(testPrincipals), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cmd := exec.Command(binary, append([]string{"serve", "--listen", "127.0.0.1:" + strconv.Itoa(port), "--principals", principalsFile,
		"--data-dir", dataDir, "--log-level", "info"}, args...)...)
	s := &sealedServer{cmd: cmd, endpoint: "http://127.0.0.1:" + strconv.Itoa(port), stderr: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill(); s.done <- <-s.done })
	s.waitReady(t)
	return s
}

// dialFrom opens a TCP connection to addr from the loopback address from
// (127.0.0.0/8 is all loopback on Linux, so each is a client of its own).
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", from, err)
	}
	return c
}

// TestIdleConnectionFloodLeavesRoom: connections that never send a request
// — 100 from the client's own address and 16 from each of eight others,
// well over --max-connections 64 and --max-connections-per-client 16 —
// do not lock anyone out: an SDK call and GET /healthz from the flooding
// address are served at once, and a later flood from the eight addresses
// leaves room for them too.
func TestIdleConnectionFloodLeavesRoom(t *testing.T) {
	s := serveWith(t, "--max-connections", "64", "--max-connections-per-client", "16", "--header-timeout", "20s")
	addr := strings.TrimPrefix(s.endpoint, "http://")
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	// The server accepts in order: a request on the newest connection
	// proves every idle one before it was admitted (or made way).
	served := func(step string) {
		t.Helper()
		resp, err := http.Get(s.endpoint + "/healthz")
		if err != nil {
			t.Fatalf("%s: /healthz: %v", step, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: /healthz = %d", step, resp.StatusCode)
		}
		c := newClient(s.endpoint, testCredentials["admin"][0], testCredentials["admin"][1])
		if _, err := c.ListKeys(context.Background(), &kms.ListKeysInput{}); err != nil {
			t.Fatalf("%s: an SDK call among %d idle connections: %v", step, len(idle), err)
		}
	}
	for range 100 {
		idle = append(idle, dialFrom(t, "127.0.0.1", addr))
	}
	served("one client's flood")
	for i := 2; i <= 9; i++ {
		for range 16 {
			idle = append(idle, dialFrom(t, fmt.Sprintf("127.0.0.%d", i), addr))
		}
	}
	served("eight more clients' flood")
	alive := 0
	for _, c := range idle {
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); errors.Is(err, os.ErrDeadlineExceeded) {
			alive++
		}
	}
	if alive > 64 {
		t.Fatalf("%d idle connections still held, over --max-connections 64", alive)
	}
	t.Logf("%d of %d idle connections still held", alive, len(idle))
}

// TestSilentConnectionsClosedFast: a connection that sends nothing, or
// half a request line, is closed after --header-timeout (1 s here), not
// --read-timeout (60 s); a request whose headers came in time still gets
// --read-timeout for its body.
func TestSilentConnectionsClosedFast(t *testing.T) {
	t.Parallel() // its own servers and directories: runs beside the others
	s := serveWith(t, "--header-timeout", "1s", "--read-timeout", "60s")
	addr := strings.TrimPrefix(s.endpoint, "http://")
	var answered []byte
	closedWithin := func(c net.Conn, d time.Duration) bool {
		c.SetReadDeadline(time.Now().Add(d))
		b, err := io.ReadAll(c)
		answered = b
		return !errors.Is(err, os.ErrDeadlineExceeded)
	}
	silent := dialFrom(t, "127.0.0.1", addr)
	defer silent.Close()
	half := dialFrom(t, "127.0.0.1", addr)
	defer half.Close()
	fmt.Fprintf(half, "POST / HTTP/1.1\r\nHost: %s\r\nX-Amz-Tar", addr)
	if !closedWithin(silent, 20*time.Second) {
		t.Fatal("a silent connection was held 20 s with --header-timeout 1s")
	}
	// Closed unanswered: an HTTP client's spare connection, idle in its
	// pool, would take an answer written to it for its next request's.
	if len(answered) > 0 {
		t.Fatalf("a silent connection was answered when closed: %.80q", answered)
	}
	if !closedWithin(half, 5*time.Second) {
		t.Fatal("a connection stalled in its headers was held past --header-timeout")
	}

	slow := dialFrom(t, "127.0.0.1", addr)
	defer slow.Close()
	body := `{}`
	fmt.Fprintf(slow, "POST / HTTP/1.1\r\nHost: %s\r\nX-Amz-Target: TrentService.ListKeys\r\nContent-Type: application/x-amz-json-1.1\r\n"+
		"Content-Length: %d\r\n\r\n", addr, len(body))
	time.Sleep(2500 * time.Millisecond) // past the header timeout, within the read timeout
	if _, err := io.WriteString(slow, body); err != nil {
		t.Fatalf("the server closed a connection whose body was on its way: %v", err)
	}
	slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
	if err != nil {
		t.Fatalf("no answer to a request whose body came after the header timeout: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 { // unsigned: MissingAuthenticationToken, so the body was read and judged
		t.Fatalf("slow body: %d", resp.StatusCode)
	}
}

// TestHealthChecksWhenEverySlotServes: when every connection slot holds a
// connection that has delivered a request (real load, nothing to make way),
// a new connection still gets GET /healthz and /readyz answered (then
// closed), and a KMS request on it gets ServiceUnavailableException, which
// SDKs retry.
func TestHealthChecksWhenEverySlotServes(t *testing.T) {
	in := start(t, func(i *instance) { i.limits = awsjson.Limits{MaxConnections: 2} })
	addr := strings.TrimPrefix(in.endpoint, "http://")
	var held []net.Conn
	defer func() {
		for _, h := range held {
			h.Close()
		}
	}()
	for range 2 {
		c := dialFrom(t, "127.0.0.1", addr)
		held = append(held, c)
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 200 || resp.Close {
			t.Fatalf("connection within the cap: %v %+v", err, resp)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		c := dialFrom(t, "127.0.0.1", addr)
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, addr)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(c) // the server closes after one answer
		c.Close()
		if !bytes.HasPrefix(b, []byte("HTTP/1.1 200")) {
			t.Fatalf("%s over the cap: %q", path, b)
		}
	}
	_, err := in.kms.ListKeys(context.Background(), &kms.ListKeysInput{})
	wantCode(t, err, "ServiceUnavailableException")
	held[0].Close()
	held = held[1:]
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err = in.kms.ListKeys(context.Background(), &kms.ListKeysInput{}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a freed slot did not serve KMS again: %v", err)
		}
	}
}

// TestAmbiguousFramingRefused: a request framed two ways (Content-Length
// with Transfer-Encoding, an obfuscated Transfer-Encoding, two different
// Content-Lengths) is answered 400 and the connection closed, so a request
// smuggled behind it is never answered; plain chunked bodies keep working.
func TestAmbiguousFramingRefused(t *testing.T) {
	in := start(t)
	addr := strings.TrimPrefix(in.endpoint, "http://")
	const smuggled = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
	head := "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: TrentService.ListKeys\r\nContent-Type: application/x-amz-json-1.1\r\n"
	// send writes raw and reads answers until the server closes the
	// connection or two arrived (the most either request could get).
	send := func(raw string) (responses []*http.Response) {
		t.Helper()
		c := dialFrom(t, "127.0.0.1", addr)
		defer c.Close()
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(c)
		for len(responses) < 2 {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				return responses
			}
			io.ReadAll(resp.Body)
			resp.Body.Close()
			responses = append(responses, resp)
		}
		return responses
	}
	for _, tc := range []struct{ name, headers string }{
		{"CL then TE", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"},
		{"TE then CL", "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"},
		{"obfuscated TE", "Transfer-Encoding: xchunked\r\n"},
		{"TE list", "Transfer-Encoding: chunked, identity\r\n"},
		{"two TE", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"},
		{"two CL", "Content-Length: 5\r\nContent-Length: 0\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := send(head + tc.headers + "\r\n0\r\n\r\n" + smuggled)
			if len(rs) != 1 {
				t.Fatalf("%d answers; want one refusal and nothing for the smuggled request", len(rs))
			}
			if rs[0].StatusCode != 400 || rs[0].Header.Get("X-Amzn-ErrorType") != "SerializationException" {
				t.Fatalf("answer %d %s", rs[0].StatusCode, rs[0].Header.Get("X-Amzn-ErrorType"))
			}
		})
	}
	// A well-framed chunked request, and one that only names the marker
	// header itself, are read as usual, and the pipelined request after
	// each is answered.
	for _, headers := range []string{"Transfer-Encoding: chunked\r\n", "Content-Length: 5\r\nX-Keyledger-Refused-Framing: 1\r\n"} {
		rs := send(head + headers + "\r\n0\r\n\r\n" + smuggled)
		if len(rs) != 2 || rs[0].StatusCode != 403 || rs[1].StatusCode != 200 {
			t.Fatalf("%q: %d answers", headers, len(rs))
		}
	}
}
