package transport

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"time"
)

// NewHandshakeListener serves TLS on raw, handing out only connections whose
// handshake finished. tls.NewListener hands out a connection at once and
// leaves the handshake to its first read or write, so a server that writes
// on a fresh connection in its accept loop (fasthttp answering 503 over its
// connection cap) waits there for a client that never speaks: with the cap
// reached, one silent TCP connection stopped the whole server from
// accepting. Here each handshake runs on its own goroutine, bounded by
// timeout, and at most maxPending run at once (more are closed unanswered).
func NewHandshakeListener(raw net.Listener, cfg *tls.Config, timeout time.Duration, maxPending int) net.Listener {
	l := &handshakeListener{raw: raw, cfg: cfg, timeout: timeout, pending: make(chan struct{}, max(maxPending, 1)),
		ready: make(chan net.Conn), done: make(chan struct{})}
	go l.accept()
	return l
}

type handshakeListener struct {
	raw     net.Listener
	cfg     *tls.Config
	timeout time.Duration
	pending chan struct{} // one token per handshake in progress
	ready   chan net.Conn
	done    chan struct{} // closed when raw stops accepting
	err     error
	once    sync.Once
}

func (l *handshakeListener) accept() {
	for {
		c, err := l.raw.Accept()
		if err != nil {
			l.err = err
			close(l.done)
			return
		}
		select {
		case l.pending <- struct{}{}:
			go l.handshake(c)
		default:
			c.Close() // too many handshakes at once
		}
	}
}

func (l *handshakeListener) handshake(c net.Conn) {
	defer func() { <-l.pending }()
	tc := tls.Server(c, l.cfg)
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		tc.Close()
		return
	}
	select {
	case l.ready <- tc:
	case <-l.done:
		tc.Close()
	}
}

func (l *handshakeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}

func (l *handshakeListener) Close() error {
	var err error
	l.once.Do(func() { err = l.raw.Close() })
	return err
}

func (l *handshakeListener) Addr() net.Addr { return l.raw.Addr() }
