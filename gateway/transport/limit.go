package transport

import (
	"container/list"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// ConnLimits bound the connections a LimitListener holds.
type ConnLimits struct {
	// Max is how many connections are served normally.
	Max int
	// PerClient is how many of them one client address may hold (an IPv6
	// client is its /64: one host owns a whole /64); 0 means Max.
	PerClient int
	// Health is how many connections beyond Max are kept for health checks
	// (GET /healthz, /readyz): the server answers one request on each and
	// closes it. 0 means none.
	Health int
}

// NewLimitListener accepts on raw within lim.
//
// The design: a connection that has not yet delivered a request (fresh)
// holds a slot but costs its client nothing, so fresh connections are what
// gives way. A new connection over a cap (its client's, or Max) takes the
// slot of the oldest fresh connection under that cap, which is closed; a
// flood of idle connections from one process therefore only churns its own
// slots, and a client that sends its request right away is served. Only
// when every slot under the cap holds a connection that has delivered a
// request (real load) does a new connection go to the health pool: Health
// slots, shared the same way (the oldest fresh one gives way), on which the
// server answers health checks only. Beyond that a new connection is closed
// unanswered. Nothing is written on a connection here: with TLS the
// handshake comes after (NewHandshakeListener), and a write could block.
//
// The server marks a connection as having delivered a request with Served
// (the HTTP handler calls it on every request); until then the connection
// is fresh. How long a fresh connection may stay silent is the server's
// header timeout (and the handshake timeout with TLS).
//
// Close the returned listener to stop accepting; connections close on their
// own. Safe for concurrent use.
func NewLimitListener(raw net.Listener, lim ConnLimits) *LimitListener {
	lim.Max = max(lim.Max, 1)
	if lim.PerClient <= 0 || lim.PerClient > lim.Max {
		lim.PerClient = lim.Max
	}
	lim.Health = max(lim.Health, 0)
	return &LimitListener{Listener: raw, lim: lim, clients: map[netip.Addr]*client{}}
}

// LimitListener is a listener that caps connections per client and in
// total (NewLimitListener).
type LimitListener struct {
	net.Listener
	lim ConnLimits

	mu      sync.Mutex
	clients map[netip.Addr]*client
	general pool
	health  pool

	evicted, refused atomic.Uint64
}

// pool is a set of slots and its fresh connections, oldest first.
type pool struct {
	n     int
	fresh list.List // of *LimitedConn
}

// client is one client address's connections in the general pool.
type client struct {
	n     int
	fresh list.List // of *LimitedConn
}

// LimitedConn is a connection a LimitListener admitted.
type LimitedConn struct {
	net.Conn
	l      *LimitListener
	addr   netip.Addr
	health bool          // in the health pool
	served atomic.Bool   // delivered a request (Served)
	closed atomic.Bool   // Close was called, or the listener evicted it
	inPool bool          // holds a slot (guarded by l.mu)
	elem   *list.Element // in its pool's fresh list while fresh (l.mu)
	ipElem *list.Element // in its client's fresh list while fresh (l.mu)
}

// LimitStats counts connections the listener closed to keep its limits.
type LimitStats struct {
	Evicted uint64 // fresh connections closed to make room
	Refused uint64 // new connections closed for want of any slot
}

// Stats reports what the listener closed so far.
func (l *LimitListener) Stats() LimitStats {
	return LimitStats{Evicted: l.evicted.Load(), Refused: l.refused.Load()}
}

// Accept returns the next admitted connection.
func (l *LimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if lc := l.admit(c); lc != nil {
			return lc, nil
		}
	}
}

// clientAddr is the address a connection counts against: its IP, or for
// IPv6 its /64.
func clientAddr(a net.Addr) netip.Addr {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}
	}
	ip := ta.AddrPort().Addr().Unmap()
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return ip
}

func (l *LimitListener) admit(c net.Conn) *LimitedConn {
	lc := &LimitedConn{Conn: c, l: l, addr: clientAddr(c.RemoteAddr())}
	l.mu.Lock()
	cl := l.clients[lc.addr]
	var victim *LimitedConn
	switch {
	case cl != nil && cl.n >= l.lim.PerClient:
		victim = oldest(&cl.fresh)
	case l.general.n >= l.lim.Max:
		victim = oldest(&l.general.fresh)
	}
	general := victim != nil || ((cl == nil || cl.n < l.lim.PerClient) && l.general.n < l.lim.Max)
	if !general {
		if l.health.n >= l.lim.Health {
			victim = oldest(&l.health.fresh)
			if victim == nil {
				l.mu.Unlock()
				l.refused.Add(1)
				c.Close()
				return nil
			}
		}
		lc.health = true
	}
	if victim != nil {
		l.releaseLocked(victim)
		victim.closed.Store(true)
	}
	l.holdLocked(lc)
	l.mu.Unlock()
	if victim != nil {
		l.evicted.Add(1)
		victim.Conn.Close()
	}
	return lc
}

func oldest(fresh *list.List) *LimitedConn {
	if e := fresh.Front(); e != nil {
		return e.Value.(*LimitedConn)
	}
	return nil
}

// holdLocked gives lc a slot, as a fresh connection.
func (l *LimitListener) holdLocked(lc *LimitedConn) {
	lc.inPool = true
	if lc.health {
		l.health.n++
		lc.elem = l.health.fresh.PushBack(lc)
		return
	}
	l.general.n++
	lc.elem = l.general.fresh.PushBack(lc)
	cl := l.clients[lc.addr]
	if cl == nil {
		cl = &client{}
		l.clients[lc.addr] = cl
	}
	cl.n++
	lc.ipElem = cl.fresh.PushBack(lc)
}

// releaseLocked frees lc's slot.
func (l *LimitListener) releaseLocked(lc *LimitedConn) {
	if !lc.inPool {
		return
	}
	lc.inPool = false
	l.unfreshLocked(lc)
	if lc.health {
		l.health.n--
		return
	}
	l.general.n--
	if cl := l.clients[lc.addr]; cl != nil {
		if cl.n--; cl.n == 0 {
			delete(l.clients, lc.addr)
		}
	}
}

// unfreshLocked takes lc off the fresh lists: it no longer gives way.
func (l *LimitListener) unfreshLocked(lc *LimitedConn) {
	if lc.elem == nil {
		return
	}
	if lc.health {
		l.health.fresh.Remove(lc.elem)
	} else {
		l.general.fresh.Remove(lc.elem)
		if cl := l.clients[lc.addr]; cl != nil {
			cl.fresh.Remove(lc.ipElem)
		}
	}
	lc.elem, lc.ipElem = nil, nil
}

// Close closes the connection and frees its slot.
func (c *LimitedConn) Close() error {
	c.closed.Store(true)
	c.l.mu.Lock()
	c.l.releaseLocked(c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// SetReadDeadline sets the read deadline. On a connection already closed
// here (to make room, or by the server's shutdown closing idle
// connections while a request arrived on one) it does nothing and
// succeeds: the next read or write sees the connection closed. fasthttp
// panics when setting a deadline fails, and both races can reach those
// calls.
func (c *LimitedConn) SetReadDeadline(t time.Time) error {
	if err := c.Conn.SetReadDeadline(t); err != nil && !c.closed.Load() {
		return err
	}
	return nil
}

// SetWriteDeadline sets the write deadline, forgiving a closed connection
// like SetReadDeadline.
func (c *LimitedConn) SetWriteDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil && !c.closed.Load() {
		return err
	}
	return nil
}

// SetDeadline sets both deadlines, forgiving a closed connection like
// SetReadDeadline.
func (c *LimitedConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetDeadline(t); err != nil && !c.closed.Load() {
		return err
	}
	return nil
}

// Served marks conn (a *LimitedConn, or a *tls.Conn over one) as having
// delivered a request: it no longer gives way to new connections. It
// reports whether conn holds a health-check slot, on which only health
// checks may be answered. Connections of other listeners are left alone
// (false).
func Served(conn net.Conn) (healthOnly bool) {
	if nc, ok := conn.(interface{ NetConn() net.Conn }); ok {
		conn = nc.NetConn()
	}
	lc, ok := conn.(*LimitedConn)
	if !ok {
		return false
	}
	if !lc.served.Swap(true) {
		lc.l.mu.Lock()
		lc.l.unfreshLocked(lc)
		lc.l.mu.Unlock()
	}
	return lc.health
}
