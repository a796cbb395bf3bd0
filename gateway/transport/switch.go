package transport

import (
	"net"
	"sync"
)

// Switch shares one listening socket among servers that take turns: a
// start-up responder answers health probes while the ledger replays, then
// the real server takes over the same address, so clients and load
// balancers never see the port closed. Each server gets its own Listener
// from Next; closing that Listener stops only that server's accepting.
type Switch struct {
	ln    net.Listener
	conns chan net.Conn
	done  chan struct{} // closed when the socket stops accepting
	stop  chan struct{} // closed by Close
	once  sync.Once
	err   error
}

// NewSwitch starts accepting on ln.
func NewSwitch(ln net.Listener) *Switch {
	s := &Switch{ln: ln, conns: make(chan net.Conn), done: make(chan struct{}), stop: make(chan struct{})}
	go s.accept()
	return s
}

func (s *Switch) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			s.err = err
			close(s.done)
			return
		}
		select {
		case s.conns <- c:
		case <-s.stop:
			c.Close()
			return
		}
	}
}

// Next returns a Listener that accepts the socket's connections until it is
// closed; a connection is taken by exactly one Listener.
func (s *Switch) Next() net.Listener {
	return &turn{s: s, closed: make(chan struct{})}
}

// Close closes the socket.
func (s *Switch) Close() error {
	var err error
	s.once.Do(func() {
		close(s.stop)
		err = s.ln.Close()
	})
	return err
}

type turn struct {
	s      *Switch
	closed chan struct{}
	once   sync.Once
}

func (t *turn) Accept() (net.Conn, error) {
	select {
	case <-t.closed:
		return nil, net.ErrClosed
	default:
	}
	select {
	case c := <-t.s.conns:
		return c, nil
	case <-t.closed:
		return nil, net.ErrClosed
	case <-t.s.done:
		return nil, t.s.err
	}
}

func (t *turn) Close() error {
	t.once.Do(func() { close(t.closed) })
	return nil
}

func (t *turn) Addr() net.Addr { return t.s.ln.Addr() }
