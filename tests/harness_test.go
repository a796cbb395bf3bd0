// Package tests holds keyledger's end-to-end tests: the real aws-sdk-go-v2
// KMS client over HTTP against the real gateway, on a real in-process
// nats-server with JetStream.
package tests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
	"golang.org/x/mod/sumdb/note"

	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/gateway/awsjson"
	"github.com/keyledger/keyledger/gateway/metrics"
	"github.com/keyledger/keyledger/gateway/node"
	"github.com/keyledger/keyledger/gateway/principals"
	"github.com/keyledger/keyledger/gateway/throttle"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/backend"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/material"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/writer"
)

const (
	testAccount  = "111122223333"
	otherAccount = "444455556666"
	testRegion   = "us-east-1"
)

// testPrincipals are the identities every test instance knows:
//   - admin (account A): identity policy kms:* on *
//   - alice (A): no identity policy; only what key policies and grants give her
//   - bob (A): identity policy allowing Encrypt, Decrypt, DescribeKey on A's keys
//   - carol (account B): identity policy allowing Encrypt, Decrypt, DescribeKey on A's keys
//   - dave (B): no identity policy
//   - erin (B): account B's administrator: kms:* and keyledger's read
//     actions on *, but not keyledger:ReadAllAccounts
const testPrincipals = `{"accounts":{
 "111122223333":{"users":{
  "admin":{"accessKeys":[{"id":"AKIAADMIN00000001","secret":"admin-secret-000000000001"}],
   "policies":[{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:*","keyledger:*"],"Resource":"*"}]}]},
  "alice":{"accessKeys":[{"id":"AKIAALICE00000001","secret":"alice-secret-000000000001"}]},
  "bob":{"accessKeys":[{"id":"AKIABOB0000000001","secret":"bob-secret-00000000000001"}],
   "policies":[{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:Encrypt","kms:Decrypt","kms:DescribeKey"],"Resource":"arn:aws:kms:*:111122223333:key/*"}]}]}}},
 "444455556666":{"users":{
  "carol":{"accessKeys":[{"id":"AKIACAROL00000001","secret":"carol-secret-00000000001"}],
   "policies":[{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:Encrypt","kms:Decrypt","kms:DescribeKey"],"Resource":"arn:aws:kms:*:111122223333:key/*"}]}]},
  "dave":{"accessKeys":[{"id":"AKIADAVE000000001","secret":"dave-secret-000000000001"}]},
  "erin":{"accessKeys":[{"id":"AKIAERIN000000001","secret":"erin-secret-000000000001"}],
   "policies":[{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:*","keyledger:ReadAudit","keyledger:SubscribeAudit","keyledger:ReadReports"],"Resource":"*"}]}]}}}}}`

var testCredentials = map[string][2]string{
	"admin": {"AKIAADMIN00000001", "admin-secret-000000000001"},
	"alice": {"AKIAALICE00000001", "alice-secret-000000000001"},
	"bob":   {"AKIABOB0000000001", "bob-secret-00000000000001"},
	"carol": {"AKIACAROL00000001", "carol-secret-00000000001"},
	"dave":  {"AKIADAVE000000001", "dave-secret-000000000001"},
	"erin":  {"AKIAERIN000000001", "erin-secret-000000000001"},
}

// fakeClock is the injected clock the tests move.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// syncBuffer collects log output from concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// Reset empties the buffer.
func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// instance is one keyledger node serving HTTP on a loopback port.
type instance struct {
	t         *testing.T
	dir       string
	root      rootkey.Key
	clock     *fakeClock
	logs      *syncBuffer
	backend   *backend.Backend
	node      *node.Node
	endpoint  string
	kms       *kms.Client
	natsURL   string // set when running against an external NATS server
	ledgerCf  ledger.Config
	replicas  int
	signer    note.Signer // signs checkpoints
	vkey      string      // verifies them
	tls       *tls.Config // serve TLS with this (withTLS)
	client    *http.Client
	limits    awsjson.Limits
	listen    func() net.Listener // where to serve once started (default: a new loopback port)
	writer    *writer.Key         // signs ledger messages
	snapshots node.Snapshots      // withSnapshots
	natsNet   bool                // embedded: also listen for NATS clients on loopback
	throttle  *throttle.Limiter   // withThrottle
	metrics   *metrics.Metrics    // withMetrics
	minFree   int64               // embedded: space kept free on the data disk (0: default)
	sealFile  string              // withSeal: a passphrase seal file, unsealed at each start
	operator  string              // withOperator
	seedDev   bool                // withSeedDev
	iam       string              // withPrincipals (default testPrincipals)
}

type option func(*instance)

// withNATS runs the instance against an existing NATS server.
func withNATS(url string) option { return func(i *instance) { i.natsURL = url } }

// withSnapshots tunes the instance's projection snapshots.
func withSnapshots(s node.Snapshots) option { return func(i *instance) { i.snapshots = s } }

// withWriter signs the ledger with k (a deployment's escrowed writer key).
func withWriter(k *writer.Key) option { return func(i *instance) { i.writer = k } }

// withReplicas sets the stream replicas (with withNATS, on a cluster).
func withReplicas(n int) option { return func(i *instance) { i.replicas = n } }

// withNATSListen gives the embedded server a loopback NATS listener.
func withNATSListen() option { return func(i *instance) { i.natsNet = true } }

// withThrottle throttles requests with l; its refusals are recorded every
// 50 ms.
func withThrottle(l *throttle.Limiter) option { return func(i *instance) { i.throttle = l } }

// withMetrics gives the instance metrics (one node per Metrics: no restart).
func withMetrics(m *metrics.Metrics) option { return func(i *instance) { i.metrics = m } }

// withSeal keeps the root key in the passphrase seal file at path (with
// sealPassphrase), unsealed at each start, instead of a plaintext root key.
func withSeal(path string) option { return func(i *instance) { i.sealFile = path } }

// withOperator names the operator account (service-wide operations).
func withOperator(account string) option { return func(i *instance) { i.operator = account } }

// withPrincipals serves the principals configuration doc instead of
// testPrincipals.
func withPrincipals(doc string) option { return func(i *instance) { i.iam = doc } }

// withSeedDev accepts known key material in seeds (serve --seed-dev).
func withSeedDev() option { return func(i *instance) { i.seedDev = true } }

func withPublishTimeout(d time.Duration) option {
	return func(i *instance) { i.ledgerCf.PublishTimeout = d }
}

func start(t *testing.T, opts ...option) *instance {
	t.Helper()
	i := &instance{t: t, dir: t.TempDir(), root: rootkey.Generate(), logs: &syncBuffer{},
		clock: &fakeClock{now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}}
	for _, o := range opts {
		o(i)
	}
	var err error
	if i.signer, i.vkey, err = merkle.LoadOrCreateKey(filepath.Join(i.dir, "checkpoint.key"), "keyledger-test"); err != nil {
		t.Fatal(err)
	}
	if i.writer == nil {
		i.writer = testWriterKey(t, i.natsURL, i.dir)
	}
	i.up()
	t.Cleanup(i.down)
	return i
}

// up starts (or restarts) the instance on its data directory.
func (i *instance) up() {
	t := i.t
	t.Helper()
	var err error
	log := slog.New(slog.NewTextHandler(i.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if i.natsURL != "" {
		i.backend, err = backend.Connect(i.natsURL, backend.Options{Replicas: i.replicas})
	} else {
		opts := embedded.Options{DataDir: filepath.Join(i.dir, "jetstream"), Logger: log, MinFreeDisk: i.minFree}
		if i.natsNet {
			opts.Listen = "127.0.0.1:0"
		}
		i.backend, err = backend.Embedded(opts)
	}
	if err != nil {
		t.Fatal(err)
	}
	doc := testPrincipals
	if i.iam != "" {
		doc = i.iam
	}
	dir, err := principals.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	cfg := node.Config{
		Region: testRegion, RootKey: i.root, Clock: i.clock, Principals: dir,
		SchedulerInterval: 20 * time.Millisecond, SchedulerLeaseTTL: time.Second, Ledger: i.ledgerCfg(), Logger: log, HTTP: i.limits,
		CheckpointSigner: i.signer, CheckpointVerifier: i.vkey, CheckpointInterval: time.Hour, // tests checkpoint explicitly
		Throttle: i.throttle, ThrottleReportInterval: 50 * time.Millisecond, Metrics: i.metrics, Snapshots: i.snapshots,
		OperatorAccount: i.operator, SeedDev: i.seedDev,
	}
	if i.sealFile != "" {
		cfg.RootKey, cfg.RootSeal = unsealedKeeper(t, i.sealFile)
	}
	i.node, err = node.Start(context.Background(), i.backend, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if i.sealFile != "" {
		i.node.Rotation.Resume()
	}
	var ln net.Listener
	if i.listen != nil {
		ln = i.listen()
	} else if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	i.endpoint = "http://" + ln.Addr().String()
	if i.tls != nil {
		i.endpoint = "https://" + ln.Addr().String()
	}
	ln = i.limits.Listen(ln, i.tls) // as serve does
	go i.node.Serve(ln)
	i.kms = i.as("admin")
}

// down stops the instance; safe to call twice.
func (i *instance) down() {
	if i.node != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = i.node.Close(ctx)
		i.node = nil
	}
	if i.backend != nil {
		i.backend.Close()
		i.backend = nil
	}
}

func (i *instance) ledgerCfg() ledger.Config {
	c := i.ledgerCf
	c.Writer = i.writer
	return c
}

// testWriterKey is an instance's writer key: instances sharing one NATS
// server share one (the deployment's writer key), derived from its URL.
func testWriterKey(t *testing.T, natsURL, dir string) *writer.Key {
	t.Helper()
	if natsURL != "" {
		seed := sha256.Sum256([]byte("keyledger test writer " + natsURL))
		k, err := writer.FromSeed(seed[:])
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k, _, err := writer.LoadOrCreate(filepath.Join(dir, "writer.key"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (i *instance) restart() {
	i.down()
	i.up()
}

// as returns a KMS client signing as one of testPrincipals.
func (i *instance) as(user string) *kms.Client {
	c := testCredentials[user]
	cl := newClient(i.endpoint, c[0], c[1])
	if i.client != nil {
		cl = kms.New(cl.Options(), func(o *kms.Options) { o.HTTPClient = i.client })
	}
	return cl
}

func newClient(endpoint, accessKey, secretKey string) *kms.Client {
	return kms.New(kms.Options{
		Region:           testRegion,
		BaseEndpoint:     aws.String(endpoint),
		Credentials:      credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
		RetryMaxAttempts: 1,
	})
}

// records returns every event in the ledger.
func (i *instance) records() []event.Record {
	i.t.Helper()
	var out []event.Record
	if _, err := i.node.Ledger.Replay(context.Background(), chain.Head{}, func(r event.Record) error {
		out = append(out, r)
		return nil
	}); err != nil {
		i.t.Fatal(err)
	}
	return out
}

// createKey makes a symmetric key and returns its id.
// materialStored reports whether the material store still holds key
// material id; a failed read fails the test.
func (i *instance) materialStored(id string) bool {
	i.t.Helper()
	_, err := i.node.Materials.Get(context.Background(), id)
	if errors.Is(err, material.ErrNotFound) {
		return false
	}
	if err != nil {
		i.t.Fatalf("material store: %v", err)
	}
	return true
}

func (i *instance) createKey(desc string) string {
	i.t.Helper()
	out, err := i.kms.CreateKey(context.Background(), &kms.CreateKeyInput{Description: aws.String(desc)})
	if err != nil {
		i.t.Fatal(err)
	}
	return *out.KeyMetadata.KeyId
}

// wantCode asserts that err is the AWS error code, and returns its message.
func wantCode(t *testing.T, err error, code string) string {
	t.Helper()
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("err = %v, want %s", err, code)
	}
	if apiErr.ErrorCode() != code {
		t.Fatalf("error code = %s (%s), want %s", apiErr.ErrorCode(), apiErr.ErrorMessage(), code)
	}
	if apiErr.ErrorMessage() == "" {
		t.Fatalf("%s has no message", code)
	}
	return apiErr.ErrorMessage()
}
