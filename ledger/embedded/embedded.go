// Package embedded runs an in-process nats-server with JetStream, the
// default deployment: one process, nothing else to install.
//
// Durability: the server is started with sync_interval "always", so
// JetStream fsyncs every stored message before it acknowledges it. An
// acknowledged ledger event therefore survives kill -9 and a power cut. The
// ledger group-commits many events into one message, so the cost is one
// fsync per group, not per request.
//
// Authorization: the server has no anonymous user. keyledger connects as
// its own nkey user (seed in AuthDir, mode 0600), the only identity allowed
// to publish to its streams, KV buckets and the JetStream API. Audit
// subscribers on Listen use a second, read-only nkey (AuditSeedFile) in an
// account of their own, and each auditor named in Options.Auditors one of
// its own in an account of its own: they can read the ledger (every
// segment, linked as it appears: segments.go), checkpoint and snapshot
// streams with direct gets and the live feed, and have the server write
// nothing, nor answer into another auditor's reads (auth.go says why an
// account, not permissions, ensures that). `keyledger backup` on Listen
// uses a read-only nkey (BackupSeedFile) in another account, which reads
// what audit reads but the feed, and the material bucket. Every reader's
// requests are served by a bounded read proxy in keyledger's account, not
// by JetStream directly (readproxy.go). With Options.TLS the listener
// requires TLS.
package embedded

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/keyledger/keyledger/ledger/internal/streamname"
)

// Options configure the embedded server.
type Options struct {
	DataDir string // JetStream storage directory (required)
	// Listen is host:port for NATS clients (e.g. audit subscribers). Empty
	// means no network listener: in-process connections only.
	Listen string
	// TLS, if set, is required of every client on Listen (in-process
	// connections need none). Whether plaintext may listen is the
	// caller's rule (serve allows it on loopback only).
	TLS *tls.Config
	// NoSync turns off fsync on every write (serve --unsafe-no-fsync, used
	// to measure what durability costs): an acknowledged event may then be
	// lost on a power cut. Never for a deployment that keeps real keys.
	NoSync bool
	// AuthDir holds the NATS identities' nkey seeds (default DataDir).
	AuthDir string
	// AuditStreams are the streams audit subscribers may read (default the
	// ledger stream KEYLEDGER), with their checkpoints and snapshots.
	AuditStreams []string
	// Logger receives the server's warnings and errors (default: none).
	Logger *slog.Logger
	// MinFreeDisk is the space kept free on DataDir's disk: writes are
	// refused below it (default DefaultMinFreeDisk; negative: no check).
	MinFreeDisk int64
	// Repairable are streams another copy repairs (the material buckets):
	// their damaged blocks are moved aside at start (damaged.go).
	Repairable []string
	// Auditors names auditors besides the default one (AuditSeedFile):
	// each gets its own read-only nkey, AuditorSeedFileName(name) under
	// AuthDir, in its own account, so that no auditor can have the server
	// answer into another's reads (auth.go). A name dropped from the list
	// no longer logs in; its seed file stays.
	Auditors []string

	// pending replaces Server.pendingBytes in tests of the read proxy.
	pending func(account string) int
}

// Server is a running embedded nats-server.
type Server struct {
	ns       *server.Server
	storeDir string
	id       *identities
	storage  *storage
	tls      bool // clients on the listener must use TLS

	watcher  *nats.Conn // in-process: stream-created advisories
	segments *segments  // segment streams linked for the reading identities
	proxy    *readProxy // serves the reading identities' reads (readproxy.go)
}

// tlsTimeout bounds a NATS client's TLS handshake.
const tlsTimeout = 5 * time.Second

// Start starts the server and waits until it is ready.
func Start(opts Options) (*Server, error) {
	if opts.DataDir == "" {
		return nil, errors.New("embedded: a data directory is required")
	}
	if opts.AuthDir == "" {
		opts.AuthDir = opts.DataDir
	}
	if len(opts.AuditStreams) == 0 {
		opts.AuditStreams = []string{streamname.Default}
	}
	var streams []string
	for _, s := range opts.AuditStreams {
		// Snapshots hold only what folding the ledger gives anyone who may
		// read it; reading them lets an auditor's report and time travel
		// start from one instead of folding the whole ledger.
		// Segment streams <s>_<n> are linked as they appear (segments.go).
		streams = append(streams, s, s+"_CHECKPOINTS", s+"_CHECKPOINTS_RECENT", "OBJ_"+s+"_SNAPSHOTS", "KV_"+s+"_BASE")
	}
	if err := preflight(opts.DataDir, opts.AuditStreams); err != nil {
		return nil, err
	}
	moved, err := quarantine(opts.DataDir, opts.Repairable)
	if err != nil {
		return nil, fmt.Errorf("embedded: moving damaged blocks aside: %w", err)
	}
	for _, m := range moved {
		if opts.Logger != nil {
			opts.Logger.Warn("damaged block moved aside before nats-server opened it; what it held is rewritten from the other copy", "block", m)
		}
	}
	id, err := loadIdentities(opts.AuthDir, opts.Auditors)
	if err != nil {
		return nil, fmt.Errorf("embedded: NATS identities: %w", err)
	}
	accounts, err := id.accounts()
	if err != nil {
		return nil, err
	}
	users, err := id.users(accounts)
	if err != nil {
		return nil, err
	}
	so := &server.Options{
		Accounts:           accounts,
		Nkeys:              users,
		ServerName:         "keyledger-embedded",
		JetStream:          true,
		StoreDir:           opts.DataDir,
		SyncAlways:         !opts.NoSync,
		NoSigs:             true,
		NoLog:              true,
		MaxPayload:         8 << 20,
		JetStreamMaxMemory: 256 << 20,
		// keyledger keeps MinFreeDisk free itself, checked before every
		// write; JetStream's own default (75% of what was free at start)
		// would go stale and refuse writes after a restart on a fuller disk.
		JetStreamMaxStore: 1 << 50,
	}
	if opts.Listen == "" {
		so.DontListen = true
	} else {
		host, port, err := net.SplitHostPort(opts.Listen)
		if err != nil {
			return nil, fmt.Errorf("embedded: listen address: %w", err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("embedded: listen port: %w", err)
		}
		if p == 0 {
			// Port 0 means any free port, as for every Go listener; to
			// nats-server it means its default, 4222, which two servers
			// on one machine would both take.
			p = server.RANDOM_PORT
		}
		so.Host, so.Port = host, p
		if opts.TLS != nil {
			so.TLSConfig = opts.TLS
			so.TLSTimeout = tlsTimeout.Seconds()
		}
	}
	ns, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	// The server registers copies of Options.Accounts.
	readers := make([]*server.Account, len(id.readers))
	for i, r := range id.readers {
		if readers[i], err = ns.LookupAccount(r.account); err != nil {
			return nil, fmt.Errorf("embedded: %w", err)
		}
		if err := linkReader(ns.GlobalAccount(), readers[i], r, streams); err != nil {
			return nil, err
		}
	}
	reserve := opts.MinFreeDisk
	if reserve == 0 {
		reserve = DefaultMinFreeDisk
	}
	st := newStorage(opts.DataDir, reserve, server.JetStreamConfig{StoreDir: so.StoreDir, SyncAlways: so.SyncAlways,
		Strict: true, MaxMemory: so.JetStreamMaxMemory, MaxStore: so.JetStreamMaxStore, CompressOK: true})
	st.ns = ns
	fatal := make(chan string, 1)
	rec := &recoveries{}
	ns.SetLogger(serverLog{l: opts.Logger, storage: st, fatal: fatal, recoveries: rec}, false, false)
	go ns.Start()
	if err := waitReady(ns, fatal, 30*time.Second); err != nil {
		ns.Shutdown()
		return nil, err
	}
	// With an account besides the global one, nats-server enables
	// JetStream only where an account says so; keyledger's streams are in
	// the global account (<DataDir>/$G), as before the audit account.
	if err := ns.GlobalAccount().EnableJetStream(nil, nil); err != nil {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded: JetStream: %w", err)
	}
	if err := checkRecovered(ns, opts.DataDir, opts.AuditStreams, rec); err != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, err
	}
	srv := &Server{ns: ns, storeDir: opts.DataDir, id: id, storage: st, tls: so.TLSConfig != nil}
	if srv.watcher, err = srv.Connect("keyledger-segments"); err != nil {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded: %w", err)
	}
	if srv.segments, err = watchSegments(srv.watcher, ns.GlobalAccount(), readers, opts.AuditStreams); err != nil {
		srv.Shutdown()
		return nil, err
	}
	if srv.proxy, err = srv.startReadProxy(readers, opts.pending); err != nil {
		srv.Shutdown()
		return nil, err
	}
	return srv, nil
}

// Connect opens an in-process client connection (no TCP).
// as keyledger's own NATS user.
func (s *Server) Connect(name string) (*nats.Conn, error) { return s.connect(name) }

func (s *Server) connect(name string, extra ...nats.Option) (*nats.Conn, error) {
	auth, err := s.id.connectOption()
	if err != nil {
		return nil, err
	}
	opts := []nats.Option{nats.InProcessServer(s.ns), nats.Name(name), nats.MaxReconnects(-1), auth,
		nats.CustomInboxPrefix(keyledgerInbox)}
	return nats.Connect("", append(opts, extra...)...)
}

// StoreDir is the JetStream storage directory (Options.DataDir).
func (s *Server) StoreDir() string { return s.storeDir }

// HasInterest reports whether a subscription in keyledger's account
// matches subject: a client's, an auditor's through its account's import
// (nats-server shadows it here), or one on another server of a cluster.
func (s *Server) HasInterest(subject string) bool {
	return s.ns.GlobalAccount().SubscriptionInterest(subject)
}

// AuditSeedFile is the path of the subscribe-only nkey seed of the
// default auditor.
func (s *Server) AuditSeedFile() string { return s.id.auditor("").file }

// AuditorSeedFile is the path of the named auditor's nkey seed (one of
// Options.Auditors; "" the default auditor's), or "" for no such auditor.
func (s *Server) AuditorSeedFile(name string) string {
	if r := s.id.auditor(name); r != nil {
		return r.file
	}
	return ""
}

// BackupSeedFile is the path of the read-only nkey seed `keyledger backup`
// uses on the listener.
func (s *Server) BackupSeedFile() string { return s.id.readers[len(s.id.readers)-1].file }

// ClientURL is the URL network clients use (tls://… when TLS is
// required), or "" without a listener.
func (s *Server) ClientURL() string {
	if s.ns.Addr() == nil {
		return ""
	}
	u := s.ns.ClientURL()
	if s.tls {
		u = "tls://" + strings.TrimPrefix(u, "nats://")
	}
	return u
}

// CheckWrite returns nil when a write of about n bytes can be stored now, or
// an error (ErrDiskFull, ErrStoreFailed) naming why not. After the server
// failed a write, it reopens JetStream once the disk has room again, so
// writes resume without a restart.
func (s *Server) CheckWrite(n int) error { return s.storage.Check(n) }

// WriteFault is done, with the failure as its cause, once the server has
// failed to store a write (until CheckWrite heals it): a publish waiting
// for an acknowledgement that will not come can stop there.
func (s *Server) WriteFault() context.Context { return s.storage.Fault() }

// Shutdown stops the server and waits for it to finish.
func (s *Server) Shutdown() {
	if s.proxy != nil {
		s.proxy.close()
	}
	if s.watcher != nil {
		s.watcher.Close()
	}
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// waitReady waits until the server accepts connections, or returns at
// once with the cause when it failed to start (a listen port taken, a
// store it cannot open), rather than after the whole wait.
func waitReady(ns *server.Server, fatal <-chan string, wait time.Duration) error {
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); {
		if ns.ReadyForConnections(100 * time.Millisecond) {
			return nil
		}
		select {
		case msg := <-fatal:
			return fmt.Errorf("embedded: nats-server: %s", msg)
		default:
		}
	}
	return errors.New("embedded: nats-server did not become ready")
}
