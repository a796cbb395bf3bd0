package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // served only with --debug-listen, on loopback
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/keyledger/keyledger/gateway/awsjson"
	"github.com/keyledger/keyledger/gateway/console"
	"github.com/keyledger/keyledger/gateway/metrics"
	"github.com/keyledger/keyledger/gateway/node"
	"github.com/keyledger/keyledger/gateway/principals"
	"github.com/keyledger/keyledger/gateway/transport"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/backend"
	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/writer"
)

type backendFlags struct {
	dataDir, natsURL, natsCreds, natsCA, stream string
	replicas                                    int
	natsTLS                                     *tls.Config // serve: TLS for --nats-listen
	auditors                                    []string    // serve: --auditors
	regionStreams                               []string    // serve: the other regions' ledger streams
	subject                                     string      // --ledger-region: that region's ledger subject
	region                                      string      // --ledger-region
}

func (b *backendFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&b.dataDir, "data-dir", "./data", "data directory (embedded JetStream storage, generated root key)")
	fs.StringVar(&b.natsURL, "nats-url", "", "use this NATS deployment instead of the embedded server (e.g. nats://n1:4222,nats://n2:4222)")
	fs.StringVar(&b.natsCreds, "nats-creds", "", "NATS credentials file for --nats-url")
	fs.StringVar(&b.natsCA, "nats-ca", "", "PEM CA certificates to trust for a --nats-url that requires TLS\n(e.g. <data-dir>/tls/ca.pem of a serve --tls-self-signed --nats-listen)")
	fs.IntVar(&b.replicas, "replicas", 1, "JetStream replicas for the ledger and material streams with --nats-url (3 on a cluster)")
	fs.StringVar(&b.stream, "stream", ledger.DefaultStream, "ledger stream name")
	fs.Func("ledger-region", "read the ledger of this region of a serve --regions deployment (not its first region, whose\n"+
		"ledger is --stream's): its stream is <stream>_<REGION>; give --stream, if any, before it", func(region string) error {
		if !node.ValidRegion(region) {
			return fmt.Errorf("%q is not a region id", region)
		}
		b.stream = node.RegionStream(b.stream, region)
		b.subject = node.ForRegion(node.Config{Region: region}, false).Ledger.Subject
		b.region = region
		return nil
	})
}

// ledgerFlagSet is the flag set of a command that reads a ledger: the
// backend flags (--data-dir, --nats-url, …) and the command's own.
func ledgerFlagSet(name string, stderr io.Writer) (*flag.FlagSet, *backendFlags) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	bf := &backendFlags{}
	bf.register(fs)
	return fs, bf
}

// open connects to the configured NATS deployment, or starts the embedded one.
// log, when set, receives the embedded server's warnings and errors.
func (b *backendFlags) open(natsListen string, noFsync bool, log *slog.Logger) (*backend.Backend, error) {
	if b.natsURL != "" {
		return backend.Connect(b.natsURL, backend.Options{Replicas: b.replicas, CredsFile: b.natsCreds, CAFile: b.natsCA})
	}
	return backend.Embedded(embedded.Options{DataDir: filepath.Join(b.dataDir, "jetstream"), Listen: natsListen, TLS: b.natsTLS, NoSync: noFsync,
		AuthDir: b.dataDir, AuditStreams: append([]string{b.stream}, b.regionStreams...), Logger: log, Auditors: b.auditors})
}

func serve(args []string, stderr io.Writer) int {
	env := takeRootSecrets() // out of the environment before anything starts
	defer env.clear()
	fs, bf := ledgerFlagSet("serve", stderr)
	listen := fs.String("listen", "127.0.0.1:8080", "address the AWS KMS API listens on")
	natsListen := fs.String("nats-listen", "", "embedded mode: also accept NATS clients (audit subscribers) on this address; with TLS\n"+
		"(the --tls-* certificate) unless it is a loopback address")
	natsMonitor := fs.String("nats-monitor-url", "", "with --nats-url and --replicas 1: the NATS servers' monitoring endpoints (http://n1:8222,…),\n"+
		"read at start to check that they fsync every write (sync_interval: always)")
	fs.Func("auditors", "embedded mode: named auditors, comma-separated (e.g. acme,bigfour): each gets its own read-only NATS\n"+
		"identity, <data-dir>/nats-audit-<name>.nk, in an account of its own; nats-audit.nk stays the default auditor", func(v string) error {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				if err := embedded.CheckAuditorName(name); err != nil {
					return err
				}
				bf.auditors = append(bf.auditors, name)
			}
		}
		return nil
	})
	insecureNATS := fs.Bool("insecure-nats", false, "allow plaintext NATS on a non-loopback --nats-listen (every ledger event travels unencrypted)")
	rootKeyFile := fs.String("root-key-file", "", "file holding the 256-bit root key (default <data-dir>/root.key, generated if absent)")
	rootSealFile := fs.String("root-seal", "", "sealed root key file (keyledger root init); no plaintext root key is read or written.\n"+
		"passphrase: from KEYLEDGER_ROOT_PASSPHRASE or a terminal prompt; shamir: starts SEALED until keyledger unseal")
	principalsFile := fs.String("principals", "", "principals file: accounts, users and roles with access keys and IAM policies\n(default <data-dir>/principals.json, generated with one admin user if absent)")
	account := fs.String("account", "111122223333", "account of the admin user generated when there is no principals file")
	operator := fs.String("operator-account", "", "the account whose principals may unseal and rotate the root key (service-wide operations),\n"+
		"as their identity policies allow; no other account may, whatever its policies say (default: --account)")
	region := fs.String("region", "us-east-1", "AWS region in ARNs")
	regionList := fs.String("regions", "", "serve these AWS regions (comma-separated, e.g. us-east-1,eu-west-1) instead of --region alone: each its own\n"+
		"ledger, keys, ARNs, quotas and audit; a request goes to the region its SigV4 credential scope names.\n"+
		"The first keeps the names a single-region data directory has; the others' streams are <stream>_<REGION>")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	checkpointKey := fs.String("checkpoint-key", "", "Ed25519 note key that signs checkpoints (default <data-dir>/checkpoint.key, generated\nwith its verifier key beside it as checkpoint.key.pub if absent)")
	writerKeyFile := fs.String("writer-key", "", "Ed25519 key that signs every ledger message (default <data-dir>/writer.key, generated if absent;\neach instance of a --nats-url deployment has its own: register a second one with keyledger writer register)")
	segmentPeriod := fs.Duration("segment-period", 30*24*time.Hour, "start a new ledger segment stream once the current one is this old, so archived segments can be removed (audit prune); 0: never")
	segmentMessages := fs.Uint64("segment-messages", 0, "also start a new segment once the current one holds this many messages (group commits); 0: no limit")
	segmentSize := byteSize(defaultSegmentSize)
	fs.Var(&segmentSize, "segment-size", "also start a new segment once the current one holds this many bytes (as JetStream counts them,\nuncompressed; e.g. 512MiB): a restart after a crash rebuilds the current segment, so this bounds it; checked every\nquarter second, so a segment may overshoot by what arrives meanwhile; a few KiB starts a stream every few commits\n(tests only: each is a stream nats-server keeps open); 0: no limit")
	checkpointEvery := fs.Duration("checkpoint-interval", node.DefaultCheckpointInterval, "how often a signed checkpoint of the ledger's Merkle tree is stored (when it grew; also at clean shutdown)")
	seedFile := fs.String("seed", "", "seed file (YAML): create the keys, aliases and settings it declares before serving;\nidempotent, recorded in the ledger (see the README's \"Seed files\")")
	seedDev := fs.Bool("seed-dev", false, "development mode for seeds: accept key material for AWS_KMS keys (test fixtures), at start and\nfrom keyledger seed --dev; never in production")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file (for performance work)")
	debugListen := fs.String("debug-listen", "", "serve Go's profiler (net/http/pprof: /debug/pprof/heap, …) on this address, e.g. 127.0.0.1:6060;\nunauthenticated, so loopback only")
	compression := fs.String("ledger-compression", "s2", "how the ledger stream's blocks are stored on disk: s2 or none")
	noFsync := fs.Bool("unsafe-no-fsync", false, "embedded mode: do not fsync each write (acknowledged events can be lost on power cut; for measuring only)")
	clockFile := fs.String("unsafe-clock-offset-file", "", "testing only: move the service clock (deletion windows, rotation, expiry) forward by the\nduration in this file (e.g. 192h), re-read every 100 ms")
	var peers peerFlags
	fs.Var(&peers, "region-peer", "another deployment's region that multi-Region keys replicate to and from (repeatable):\n"+
		"REGION,domain=<its JetStream domain>,writer=<its writer public key>[,stream=<its ledger stream>]; the two NATS\n"+
		"deployments must be joined (leaf node or gateway) with keyledger.> denied on the link (README)")
	var tf tlsFlags
	tf.register(fs)
	var limits awsjson.Limits
	fs.IntVar(&limits.MaxConnections, "max-connections", awsjson.DefaultMaxConnections, "most concurrent client connections; beyond it a new one takes the slot of\nthe oldest that has sent no request yet, else it may only ask /healthz or /readyz")
	fs.IntVar(&limits.MaxConnectionsPerClient, "max-connections-per-client", awsjson.DefaultMaxConnectionsPerClient, "most concurrent connections from one client address (IPv6: one /64); raise it behind a proxy")
	fs.DurationVar(&limits.HeaderTimeout, "header-timeout", awsjson.DefaultHeaderTimeout, "longest time for a connection to send a request's headers (and finish a TLS handshake);\na connection that sends nothing is closed after it")
	fs.DurationVar(&limits.ReadTimeout, "read-timeout", awsjson.DefaultReadTimeout, "longest time to read one request's body")
	fs.DurationVar(&limits.WriteTimeout, "write-timeout", awsjson.DefaultWriteTimeout, "longest time to write one answer")
	fs.DurationVar(&limits.IdleTimeout, "idle-timeout", awsjson.DefaultIdleTimeout, "how long an idle keep-alive connection is kept")
	var of opsFlags
	of.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	if *compression != "s2" && *compression != "none" {
		fmt.Fprintln(stderr, "keyledger: --ledger-compression must be s2 or none")
		return 2
	}
	if err := tf.check(*listen); err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 2
	}
	if err := tf.checkNATS(*natsListen, *insecureNATS); err != nil && bf.natsURL == "" {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 2
	}
	if err := of.check(); err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 2
	}
	regions, err := servedRegions(*region, *regionList)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 2
	}
	if len(regions) > 1 && *rootSealFile != "" {
		fmt.Fprintln(stderr, "keyledger: --root-seal serves one region: root key rotation and unsealing are per region, and several regions\n"+
			"sharing one seal file are not supported yet; use --root-key-file (or one deployment per region)")
		return 2
	}
	*region = regions[0]
	for _, r := range regions[1:] {
		bf.regionStreams = append(bf.regionStreams, node.RegionStream(bf.stream, r))
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "keyledger: --cpuprofile: %v\n", err)
			return 2
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "keyledger: --cpuprofile: %v\n", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	if *debugListen != "" {
		if transport.CheckPlainHTTP(*debugListen, false) != nil {
			fmt.Fprintln(stderr, "keyledger: --debug-listen must be a loopback address")
			return 2
		}
		dln, err := net.Listen("tcp", *debugListen)
		if err != nil {
			fmt.Fprintf(stderr, "keyledger: --debug-listen: %v\n", err)
			return 2
		}
		go func() { _ = http.Serve(dln, http.DefaultServeMux) }() // net/http/pprof registers there
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "keyledger: --log-level: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	if bf.natsURL == "" {
		release, err := lockDataDir(bf.dataDir)
		if err != nil {
			log.Error("cannot use the data directory", "error", err)
			return 1
		}
		defer release()
	}

	rootKey, keeper, err := openRoot(*rootKeyFile, *rootSealFile, bf.dataDir, log)
	if err != nil {
		log.Error("cannot load the root key", "error", err)
		return 1
	}
	if *seedFile != "" && keeper != nil && keeper.Mode() == "shamir" {
		log.Error("--seed cannot seed a server that starts sealed (shamir): unseal it, then run keyledger seed --url")
		return 2
	}

	if *noFsync && bf.natsURL == "" {
		log.Warn("fsync is OFF: acknowledged events can be lost on a power cut; never run like this in production")
	}
	if bf.natsURL != "" && bf.replicas == 1 {
		checkSingleReplica(log, *natsMonitor)
	}
	dir, saveAdmin, err := loadPrincipals(*principalsFile, bf.dataDir, *account, *region, stderr)
	if err != nil {
		log.Error("cannot load principals", "error", err)
		return 1
	}
	operatorAccount, err := checkOperator(*operator, *account, dir, keeper, log)
	if err != nil {
		log.Error("no one could unseal the root key", "error", err)
		return 1
	}

	cpKeyPath := *checkpointKey
	if cpKeyPath == "" {
		cpKeyPath = bf.checkpointKeyFile()
	}
	signer, vkey, err := merkle.LoadOrCreateKey(cpKeyPath, "keyledger-"+*region)
	if err != nil {
		log.Error("cannot load the checkpoint signing key", "path", cpKeyPath, "error", err)
		return 1
	}
	log.Info("checkpoints are signed; verify with this key", "verifier_key", vkey, "file", cpKeyPath+".pub")

	wkPath := *writerKeyFile
	if wkPath == "" {
		wkPath = filepath.Join(bf.dataDir, "writer.key")
	}
	wk, created, err := writer.LoadOrCreate(wkPath)
	if err != nil {
		log.Error("cannot load the writer key", "path", wkPath, "error", err)
		return 1
	}
	log.Info("ledger messages are signed by this writer", "writer", wk.ID(), "public_key", wk.PublicText(), "file", wkPath, "created", created)
	tlsConfig, cert, err := tf.config(*listen, *natsListen, bf.dataDir, stderr)
	if err != nil {
		log.Error("cannot set up TLS", "error", err)
		return 1
	}
	bf.natsTLS = tlsConfig // --nats-listen serves the same certificate
	// Listen before replaying: /healthz and /readyz answer (not ready) on
	// the address while the ledger replays, then the service takes over.
	raw, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Error("cannot listen", "address", *listen, "error", err)
		return 1
	}
	// Connection limits, then TLS handshakes off the accept loop.
	sw := transport.NewSwitch(limits.Listen(raw, tlsConfig))
	defer sw.Close()
	starting := awsjson.ServeStarting(sw.Next(), limits)

	b, err := bf.open(*natsListen, *noFsync, log)
	if err != nil {
		log.Error("cannot reach NATS JetStream", "error", err)
		_ = starting.Stop(context.Background())
		return 1
	}
	defer b.Close()
	ctx := context.Background()
	var diskDir string
	if bf.natsURL == "" {
		diskDir = bf.dataDir
	}
	ncfg := node.Config{
		Region: *region, RootKey: rootKey, Principals: dir, OperatorAccount: operatorAccount, Logger: log,
		Ledger: ledger.Config{Stream: bf.stream, Writer: wk, Uncompressed: *compression == "none",
			SegmentPeriod: *segmentPeriod, SegmentMessages: *segmentMessages, SegmentBytes: uint64(segmentSize)},
		CheckpointSigner: signer, CheckpointVerifier: vkey, CheckpointInterval: *checkpointEvery,
		DataDir: diskDir, HTTP: limits,
		Throttle: of.limiter(*region, dir), SeedDev: *seedDev,
	}
	if of.metricsListen != "" {
		m := metrics.New()
		mln, err := net.Listen("tcp", of.metricsListen)
		if err != nil {
			log.Error("cannot listen for metrics", "address", of.metricsListen, "error", err)
			_ = starting.Stop(ctx)
			return 1
		}
		ncfg.Metrics = m
		ms := m.Serve(mln)
		defer ms.Shutdown(context.Background())
		log.Info("Prometheus metrics", "endpoint", "http://"+mln.Addr().String()+"/metrics")
	}
	if ncfg.Throttle == nil {
		log.Warn("request throttling is OFF (--no-throttle): one caller can take every request the instance can serve")
	} else if f := ncfg.Throttle.Fair(); f != nil {
		c := f.Config()
		log.Info("fair sharing under load", "slots", c.Slots, "cores", c.Cores, "queue", c.Queue, "quotas", of.table)
	}
	if keeper != nil {
		ncfg.RootSeal = keeper
	}
	if *clockFile != "" {
		clk, err := newOffsetClock(ctx, *clockFile)
		if err != nil {
			log.Error("cannot read the clock offset file", "path", *clockFile, "error", err)
			_ = starting.Stop(ctx)
			return 1
		}
		log.Warn("the service clock is moved by a file: keys may be deleted early; never run like this in production", "path", *clockFile)
		ncfg.Clock = clk
	}
	mr, err := multiRegion(bf.dataDir, regions, peers, log)
	if err != nil {
		log.Error("cannot set up multi-Region key replication", "error", err)
		_ = starting.Stop(ctx)
		return 1
	}
	ncfg.MultiRegion = mr[regions[0]]
	cfgs := []node.Config{ncfg}
	for _, r := range regions[1:] {
		rc := ncfg
		rc.Region, rc.Throttle, rc.Metrics = r, of.limiter(r, dir), nil // metrics: the first region's only
		rc.MultiRegion = mr[r]
		cfgs = append(cfgs, rc)
	}
	rs, err := node.StartRegions(ctx, b, cfgs)
	if err != nil {
		log.Error("cannot start", "error", err)
		_ = starting.Stop(ctx)
		return 1
	}
	n := rs.Nodes()[0]
	if err := starting.Stop(ctx); err != nil {
		log.Warn("start-up responder", "error", err)
	}
	if keeper != nil {
		if err := unsealAtStart(ctx, n, keeper, env, log); err != nil {
			log.Error("the root key stays sealed", "error", err)
			_ = rs.Close(ctx)
			return 1
		}
	}
	if *seedFile != "" {
		if err := seedAtStart(ctx, n, *seedFile, *seedDev, *account, log); err != nil {
			log.Error("cannot seed", "file", *seedFile, "error", err)
			_ = rs.Close(ctx)
			return 1
		}
	}
	if saveAdmin != nil {
		if err := saveAdmin(); err != nil {
			log.Error("cannot save the generated admin user", "error", err)
			_ = rs.Close(ctx)
			return 1
		}
	}
	mode := "embedded NATS (fsync on every write) in " + bf.dataDir
	if *noFsync {
		mode = "embedded NATS (NO fsync) in " + bf.dataDir
	}
	if bf.natsURL != "" {
		mode = "NATS at " + bf.natsURL
	} else if u := b.ClientURL(); u != "" {
		mode += ", NATS clients at " + u
		example := "keyledger audit tail --nats-url " + u + " --nats-creds " + b.AuditSeedFile()
		if tf.selfSigned {
			example += " --nats-ca " + filepath.Join(bf.dataDir, "tls", "ca.pem")
		}
		log.Info("audit subscribers connect with the subscribe-only NATS identity", "url", u, "tls", tlsConfig != nil,
			"nkey_seed_file", b.AuditSeedFile(), "example", example)
		for _, name := range bf.auditors {
			log.Info("auditor "+name+" connects with its own subscribe-only NATS identity", "nkey_seed_file", b.AuditorSeedFile(name))
		}
	}
	scheme := "http://"
	if tlsConfig != nil {
		scheme = "https://"
	}
	log.Info("keyledger serving the AWS KMS API", "endpoint", scheme+raw.Addr().String(), "ledger", mode,
		"region", strings.Join(regions, ","), "mutual_tls", tf.clientCA != "")
	for _, rn := range rs.Nodes()[1:] {
		log.Info("region served beside the first; requests signed for it go to its own ledger", "region", rn.Service.Region(),
			"stream", node.RegionStream(bf.stream, rn.Service.Region()))
	}
	log.Info("web console (sign in with an access key; requests are signed in the browser)", "url", scheme+raw.Addr().String()+console.Prefix)

	served := make(chan error, 1)
	go func() { served <- rs.Serve(sw.Next()) }()
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	if cert != nil {
		go cert.Watch(stopWatch, certWatchInterval, log)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
wait:
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGHUP {
				if cert != nil {
					cert.ReloadAndLog(log)
				}
				continue
			}
			log.Info("shutting down", "signal", s.String())
			break wait
		case err := <-served:
			log.Error("server stopped", "error", err)
			break wait
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := rs.Close(sctx); err != nil {
		log.Warn("shutdown", "error", err)
	}
	return 0
}

// loadPrincipals reads the principals file. On a first start without one
// it makes a single admin user in memory; saveAdmin writes it to
// <data-dir>/principals.json and prints its credentials once. serve calls
// it once the server has started, so a start that fails (a wrong
// passphrase) leaves no file and shows no credentials nobody can use.
func loadPrincipals(path, dataDir, account, region string, out io.Writer) (dir *principals.Directory, saveAdmin func() error, err error) {
	if path != "" {
		dir, err = principals.Load(path)
		return dir, nil, err
	}
	path = filepath.Join(dataDir, "principals.json")
	if _, err := os.Stat(path); err == nil {
		dir, err = principals.Load(path)
		return dir, nil, err
	}
	admin, err := principals.NewAdmin(account)
	if err != nil {
		return nil, nil, err
	}
	return admin.Dir, func() error {
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return err
		}
		if err := admin.Save(path); err != nil {
			return err
		}
		fmt.Fprintf(out, `
================================================================================
keyledger created an admin user for account %s (shown only this once; kept in
%s, mode 0600):

  export AWS_ACCESS_KEY_ID=%s
  export AWS_SECRET_ACCESS_KEY=%s
  export AWS_REGION=%s AWS_DEFAULT_REGION=%s

Production deployments should pass their own --principals file.
================================================================================

`, account, path, admin.AccessKeyID, admin.SecretKey, region, region)
		return nil
	}, nil
}

// servedRegions is --regions, or --region alone: well-formed region ids,
// each once.
func servedRegions(region, list string) ([]string, error) {
	if list == "" {
		list = region
	}
	var out []string
	seen := map[string]bool{}
	for _, r := range strings.Split(list, ",") {
		r = strings.TrimSpace(r)
		if !node.ValidRegion(r) {
			return nil, fmt.Errorf("--regions: %q is not a region id (like us-east-1)", r)
		}
		if seen[r] {
			return nil, fmt.Errorf("--regions: %s is named twice", r)
		}
		seen[r] = true
		out = append(out, r)
	}
	return out, nil
}
