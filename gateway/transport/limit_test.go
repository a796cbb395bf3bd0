package transport

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// TestLimitListenerMakesWay walks the admission rules with real TCP
// connections: a fresh connection gives way to a newer one over its
// client's cap or the total cap; connections that delivered a request do
// not; with nothing to give way a new connection gets a health slot, and
// with those full (and served) it is closed.
func TestLimitListenerMakesWay(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewLimitListener(raw, ConnLimits{Max: 2, PerClient: 1, Health: 1})
	defer l.Close()
	dial := func(from string) (client net.Conn, server *LimitedConn) {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return c, s.(*LimitedConn)
	}
	closedByServer := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err := c.Read(make([]byte, 1))
		return !errors.Is(err, os.ErrDeadlineExceeded)
	}

	a1, s1 := dial("127.0.0.1")
	_, s2 := dial("127.0.0.1") // over a's cap of 1: a1, fresh, gives way
	if !closedByServer(a1) || s2.health {
		t.Fatalf("a fresh connection did not give way to its client's next one (health=%v)", s2.health)
	}
	if Served(s2) {
		t.Fatal("a general slot reported as health-only")
	}
	_, s3 := dial("127.0.0.1") // a's one slot has served: nothing gives way
	if !s3.health {
		t.Fatal("over a client's cap with nothing fresh, not a health slot")
	}
	b1, _ := dial("127.0.0.2")
	_, s5 := dial("127.0.0.3") // total cap 2 reached: b1, the oldest fresh, gives way
	if !closedByServer(b1) || s5.health {
		t.Fatal("a fresh connection did not give way over the total cap")
	}
	Served(s5)
	Served(s3)
	// Everything served, the health slot too: refused. Accept does not
	// return it, so it is dialled alone and the next connection accepted.
	next := make(chan net.Conn, 1)
	go func() {
		s, _ := l.Accept()
		next <- s
	}()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.4")}}
	c, err := d.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !closedByServer(c) {
		t.Fatal("a connection beyond every slot was not closed")
	}
	s2.Close() // frees a's slot
	a7, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}}).Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer a7.Close()
	s7 := (<-next).(*LimitedConn)
	defer s7.Close()
	if s7.health {
		t.Fatal("a freed slot was not reused")
	}
	if st := l.Stats(); st.Evicted != 2 || st.Refused != 1 {
		t.Fatalf("stats %+v, want 2 evicted, 1 refused", st)
	}
	if err := s1.SetReadDeadline(time.Now()); err != nil {
		t.Fatalf("SetReadDeadline on an evicted connection: %v", err)
	}
	if err := s1.SetWriteDeadline(time.Now()); err != nil {
		t.Fatalf("SetWriteDeadline on an evicted connection: %v", err)
	}
	s7.Close()
	if err := s7.SetWriteDeadline(time.Now()); err != nil {
		t.Fatalf("SetWriteDeadline on a closed connection: %v", err)
	}
}

// TestClientAddr: an IPv4 client is its address (IPv4-mapped IPv6 too),
// an IPv6 client its /64, since one host owns a whole /64.
func TestClientAddr(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":            "192.0.2.7",
		"::ffff:192.0.2.7":     "192.0.2.7",
		"2001:db8:1:2:aaaa::1": "2001:db8:1:2::",
		"2001:db8:1:2:ffff::9": "2001:db8:1:2::",
		"2001:db8:1:3::1":      "2001:db8:1:3::",
		"::1":                  "::",
	} {
		got := clientAddr(&net.TCPAddr{IP: net.ParseIP(in), Port: 1234})
		if got.String() != want {
			t.Errorf("%s counts as %s, want %s", in, got, want)
		}
	}
	if got := clientAddr(&net.UnixAddr{Name: "/x"}); got.IsValid() {
		t.Errorf("a non-TCP address counts as %s", got)
	}
}
