package transport

import (
	"fmt"
	"net"
	"net/netip"
)

// ErrPlainHTTP explains why serve refuses to start.
type ErrPlainHTTP struct{ Addr string }

func (e *ErrPlainHTTP) Error() string {
	return fmt.Sprintf("refusing to serve plain HTTP on %s: responses carry plaintexts and data keys, so anything "+
		"but a loopback address needs TLS (--tls-cert/--tls-key, or --tls-self-signed for development); "+
		"pass --insecure-http to accept the risk (e.g. behind a TLS-terminating proxy on a private network)", e.Addr)
}

// CheckPlainHTTP decides whether plain HTTP may listen on addr (host:port):
// only on a loopback address ("localhost", 127.0.0.0/8, ::1), or anywhere
// when insecure is set explicitly. An empty host means every interface.
func CheckPlainHTTP(addr string, insecure bool) error {
	if insecure {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Unmap().IsLoopback() {
		return nil
	}
	return &ErrPlainHTTP{Addr: addr}
}
