package tests

import (
	"context"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"golang.org/x/mod/sumdb/note"

	"github.com/keyledger/keyledger/crypto/regionkey"
	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/gateway/auditclient"
	"github.com/keyledger/keyledger/gateway/node"
	"github.com/keyledger/keyledger/gateway/principals"
	"github.com/keyledger/keyledger/gateway/sigv4"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/backend"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/writer"
)

// regionSet is one keyledger process serving several regions on one
// embedded nats-server (or one external NATS) and one HTTP listener.
type regionSet struct {
	t        *testing.T
	dir      string
	regions  []string
	root     rootkey.Key
	clock    *fakeClock
	logs     *syncBuffer
	writer   *writer.Key
	signer   note.Signer
	vkey     string
	natsURL  string
	backend  *backend.Backend
	rs       *node.Regions
	endpoint string
	// configure, if set, adjusts each region's config before start.
	configure func(cfg *node.Config)
	// regionKeys are the regions' replication keys (withMultiRegion).
	regionKeys map[string]*regionkey.Key
}

// withMultiRegion replicates multi-Region keys between the regions,
// looking for work every 20 ms and sending unconfirmed work again after
// 300 ms.
func withMultiRegion() func(*regionSet) {
	return func(r *regionSet) {
		r.regionKeys = map[string]*regionkey.Key{}
		for _, region := range r.regions {
			k, err := regionkey.Generate()
			if err != nil {
				r.t.Fatal(err)
			}
			r.regionKeys[region] = k
		}
		prev := r.configure
		r.configure = func(cfg *node.Config) {
			if prev != nil {
				prev(cfg)
			}
			cfg.MultiRegion = &node.MultiRegion{Key: r.regionKeys[cfg.Region], Interval: 20 * time.Millisecond,
				ResendAfter: 300 * time.Millisecond}
		}
	}
}

func startRegions(t *testing.T, regions []string, opts ...func(*regionSet)) *regionSet {
	t.Helper()
	r := &regionSet{t: t, dir: t.TempDir(), regions: regions, root: rootkey.Generate(), logs: &syncBuffer{},
		clock: &fakeClock{now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}}
	for _, o := range opts {
		o(r)
	}
	var err error
	if r.signer, r.vkey, err = merkle.LoadOrCreateKey(filepath.Join(r.dir, "checkpoint.key"), "keyledger-test"); err != nil {
		t.Fatal(err)
	}
	if r.writer == nil {
		r.writer = testWriterKey(t, r.natsURL, r.dir)
	}
	r.up()
	t.Cleanup(r.down)
	return r
}

func (r *regionSet) up() {
	t := r.t
	t.Helper()
	var err error
	log := slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if r.natsURL != "" {
		r.backend, err = backend.Connect(r.natsURL, backend.Options{})
	} else {
		r.backend, err = backend.Embedded(embedded.Options{DataDir: filepath.Join(r.dir, "jetstream"), Logger: log, NoSync: true})
	}
	if err != nil {
		t.Fatal(err)
	}
	dir, err := principals.Parse([]byte(testPrincipals))
	if err != nil {
		t.Fatal(err)
	}
	var cfgs []node.Config
	for _, region := range r.regions {
		cfg := node.Config{
			Region: region, RootKey: r.root, Clock: r.clock, Principals: dir,
			SchedulerInterval: 20 * time.Millisecond, SchedulerLeaseTTL: time.Second,
			Ledger: ledger.Config{Writer: r.writer}, Logger: log.With("region", region),
			CheckpointSigner: r.signer, CheckpointVerifier: r.vkey, CheckpointInterval: time.Hour,
		}
		if r.configure != nil {
			r.configure(&cfg)
		}
		cfgs = append(cfgs, cfg)
	}
	if r.rs, err = node.StartRegions(context.Background(), r.backend, cfgs); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.endpoint = "http://" + ln.Addr().String()
	go r.rs.Serve(ln)
}

func (r *regionSet) down() {
	if r.rs != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = r.rs.Close(ctx)
		r.rs = nil
	}
	if r.backend != nil {
		r.backend.Close()
		r.backend = nil
	}
}

func (r *regionSet) restart() {
	r.down()
	r.up()
}

// client is a KMS client of user signing for region.
func (r *regionSet) client(user, region string) *kms.Client {
	c := testCredentials[user]
	return kms.New(kms.Options{Region: region, BaseEndpoint: aws.String(r.endpoint), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(c[0], c[1], "")})
}

func (r *regionSet) node(region string) *node.Node {
	n := r.rs.Node(region)
	if n == nil {
		r.t.Fatalf("no node for %s", region)
	}
	return n
}

// records is every event in region's ledger.
func (r *regionSet) records(region string) []event.Record {
	r.t.Helper()
	var out []event.Record
	if _, err := r.node(region).Ledger.Replay(context.Background(), chain.Head{}, func(rec event.Record) error {
		out = append(out, rec)
		return nil
	}); err != nil {
		r.t.Fatal(err)
	}
	return out
}

// TestRegionsInOneProcess: one process serves two regions; a request goes
// to the region its signature's credential scope names, each region has
// its own keys, aliases, ARNs and ledger, a request signed for a region
// not served is refused as AWS refuses a foreign scope, and the audit API
// answers per region and says which.
func TestRegionsInOneProcess(t *testing.T) {
	r := startRegions(t, []string{"us-east-1", "eu-west-1"})
	ctx := context.Background()
	us, eu := r.client("admin", "us-east-1"), r.client("admin", "eu-west-1")

	ku, err := us.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("in us")})
	if err != nil {
		t.Fatal(err)
	}
	ke, err := eu.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("in eu")})
	if err != nil {
		t.Fatal(err)
	}
	if arn := *ku.KeyMetadata.Arn; !strings.HasPrefix(arn, "arn:aws:kms:us-east-1:") {
		t.Fatalf("us key ARN %s", arn)
	}
	if arn := *ke.KeyMetadata.Arn; !strings.HasPrefix(arn, "arn:aws:kms:eu-west-1:") {
		t.Fatalf("eu key ARN %s", arn)
	}
	// Each region sees its own keys only.
	_, err = eu.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: ku.KeyMetadata.KeyId})
	wantCode(t, err, "NotFoundException")
	_, err = us.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: ke.KeyMetadata.Arn})
	wantCode(t, err, "NotFoundException")
	for region, c := range map[string]*kms.Client{"us-east-1": us, "eu-west-1": eu} {
		out, err := c.ListKeys(ctx, &kms.ListKeysInput{})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Keys) != 1 || !strings.Contains(*out.Keys[0].KeyArn, ":"+region+":") {
			t.Fatalf("%s ListKeys = %v", region, out.Keys)
		}
	}
	// The same alias name in both regions names each region's own key.
	for _, k := range []struct {
		c  *kms.Client
		id *string
	}{{us, ku.KeyMetadata.KeyId}, {eu, ke.KeyMetadata.KeyId}} {
		if _, err := k.c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/app"), TargetKeyId: k.id}); err != nil {
			t.Fatal(err)
		}
	}
	enc, err := eu.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("alias/app"), Plaintext: []byte("eu data")})
	if err != nil {
		t.Fatal(err)
	}
	if *enc.KeyId != *ke.KeyMetadata.Arn {
		t.Fatalf("alias/app in eu-west-1 encrypted with %s", *enc.KeyId)
	}
	// Ciphertext of one region's key is not the other's to decrypt.
	_, err = us.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	wantCode(t, err, "InvalidCiphertextException")

	// A region nobody serves here: AWS's answer to a foreign scope.
	_, err = r.client("admin", "ap-south-1").ListKeys(ctx, &kms.ListKeysInput{})
	if msg := wantCode(t, err, "InvalidSignatureException"); !strings.Contains(msg, "scoped to a valid region, not 'ap-south-1'") {
		t.Fatalf("foreign region: %s", msg)
	}

	// Each ledger holds its own region's events, and only those.
	for region, own := range map[string]string{"us-east-1": *ku.KeyMetadata.KeyId, "eu-west-1": *ke.KeyMetadata.KeyId} {
		var keys []string
		for _, rec := range r.records(region) {
			if rec.Event.Region != "" && rec.Event.Region != region {
				t.Fatalf("%s ledger holds an event of %s: %s", region, rec.Event.Region, rec.Event.Operation)
			}
			if rec.Event.Operation == "CreateKey" {
				keys = append(keys, rec.Event.KeyID)
			}
		}
		if !slices.Equal(keys, []string{own}) {
			t.Fatalf("%s ledger created %v, want %s", region, keys, own)
		}
	}

	// The audit API is per region too: the credential scope picks the
	// region, and its checkpoint names it.
	for _, region := range r.regions {
		if _, err := r.node(region).Checkpointer.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		c := testCredentials["admin"]
		ac := &auditclient.Client{Endpoint: r.endpoint, Region: region, Credentials: sigv4.Credentials{AccessKeyID: c[0], Secret: c[1]}}
		cp, err := ac.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if origin, _, _ := strings.Cut(string(cp), "\n"); origin != "keyledger/"+region {
			t.Fatalf("%s checkpoint origin %q", region, origin)
		}
	}

	// A restart keeps every region's keys apart.
	r.restart()
	us, eu = r.client("admin", "us-east-1"), r.client("admin", "eu-west-1")
	if _, err := us.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/app")}); err != nil {
		t.Fatal(err)
	}
	dec, err := eu.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	if err != nil || string(dec.Plaintext) != "eu data" {
		t.Fatalf("eu decrypt after restart: %v", err)
	}
}

// TestRegionsKeepSingleRegionData: a data directory a single-region
// deployment wrote becomes the first region of a multi-region one
// unchanged.
func TestRegionsKeepSingleRegionData(t *testing.T) {
	r := startRegions(t, []string{"us-east-1"})
	ctx := context.Background()
	k, err := r.client("admin", "us-east-1").CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	r.down()
	r.regions = []string{"us-east-1", "eu-west-1"}
	r.up()
	if _, err := r.client("admin", "us-east-1").DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: k.KeyMetadata.KeyId}); err != nil {
		t.Fatal(err)
	}
	out, err := r.client("admin", "eu-west-1").ListKeys(ctx, &kms.ListKeysInput{})
	if err != nil || len(out.Keys) != 0 {
		t.Fatalf("eu-west-1 keys %v, %v", out, err)
	}
}

// serveRegions starts `keyledger serve --regions us-east-1,eu-west-1` on
// dataDir (fsync on: crash tests) and waits until both regions answer.
func serveRegions(t *testing.T, dataDir string, port int) (*exec.Cmd, *regionSet) {
	t.Helper()
	principalsFile := filepath.Join(dataDir, "principals-test.json")
	if err := os.WriteFile(principalsFile, []byte(testPrincipals), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "serve", "--listen", "127.0.0.1:"+strconv.Itoa(port), "--principals", principalsFile,
		"--regions", "us-east-1,eu-west-1", "--data-dir", dataDir)
	cmd.Env = append(os.Environ(), "KEYLEDGER_LOG_LEVEL=warn")
	stderr := &syncBuffer{} // written by exec's goroutine
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	r := &regionSet{t: t, endpoint: "http://127.0.0.1:" + strconv.Itoa(port)}
	ctx := context.Background()
	us, eu := r.client("admin", "us-east-1"), r.client("admin", "eu-west-1")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, err1 := us.ListKeys(ctx, &kms.ListKeysInput{})
		_, err2 := eu.ListKeys(ctx, &kms.ListKeysInput{})
		if err1 == nil && err2 == nil {
			return cmd, r
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve --regions did not come up: %v %v\n%s", err1, err2, stderr.String())
		}
	}
}

// TestServeRegions: `keyledger serve --regions` serves both regions on
// one listener, replicates a multi-Region key between them, and
// `audit verify` checks each region's ledger on its own (--ledger-region).
func TestServeRegions(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	cmd, r := serveRegions(t, dataDir, freePort(t))
	ctx := context.Background()
	us, eu := r.client("admin", "us-east-1"), r.client("admin", "eu-west-1")
	k, err := us.CreateKey(ctx, &kms.CreateKeyInput{MultiRegion: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := us.ReplicateKey(ctx, &kms.ReplicateKeyInput{KeyId: k.KeyMetadata.KeyId, ReplicaRegion: aws.String("eu-west-1")}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "the replica in eu-west-1", func() bool {
		out, err := eu.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: k.KeyMetadata.KeyId})
		return err == nil && out.KeyMetadata.KeyState == "Enabled"
	})
	enc, err := eu.Encrypt(ctx, &kms.EncryptInput{KeyId: k.KeyMetadata.KeyId, Plaintext: []byte("eu")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := us.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob}); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	for _, args := range [][]string{{"--stream", "KEYLEDGER"}, {"--ledger-region", "eu-west-1"}} {
		if code, out := cli(t, append([]string{"audit", "verify", "--data-dir", dataDir}, args...)...); code != 0 || !strings.Contains(out, "OK") {
			t.Fatalf("audit verify %v: exit %d\n%s", args, code, out)
		}
	}
}

// TestServeRegionsKill9MidReplication: the process is killed right after
// ReplicateKey and RotateKeyOnDemand were answered, before the replicas
// can have them; after a restart every replica is made and every rotation
// current in both regions, from what the ledgers hold, and both ledgers
// verify.
func TestServeRegionsKill9MidReplication(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	port := freePort(t)
	ctx := context.Background()
	var keys []string
	for round := 0; round < 3; round++ {
		cmd, r := serveRegions(t, dataDir, port)
		us := r.client("admin", "us-east-1")
		k, err := us.CreateKey(ctx, &kms.CreateKeyInput{MultiRegion: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, *k.KeyMetadata.KeyId)
		if _, err := us.ReplicateKey(ctx, &kms.ReplicateKeyInput{KeyId: k.KeyMetadata.KeyId, ReplicaRegion: aws.String("eu-west-1")}); err != nil {
			t.Fatal(err)
		}
		if round > 0 { // the previous round's key, replicated by now or not
			if _, err := us.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: &keys[round-1]}); err != nil {
				t.Fatal(err)
			}
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
	}
	cmd, r := serveRegions(t, dataDir, port)
	us, eu := r.client("admin", "us-east-1"), r.client("admin", "eu-west-1")
	for i, id := range keys {
		waitUntil(t, 30*time.Second, "key "+id+" current and alike in both regions", func() bool {
			a, err1 := us.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
			b, err2 := eu.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
			if err1 != nil || err2 != nil || b.KeyMetadata.KeyState != "Enabled" {
				return false
			}
			rots, err := us.ListKeyRotations(ctx, &kms.ListKeyRotationsInput{KeyId: &id})
			rotated := i < len(keys)-1
			return err == nil && (len(rots.Rotations) == 1) == rotated &&
				*a.KeyMetadata.CurrentKeyMaterialId == *b.KeyMetadata.CurrentKeyMaterialId &&
				(!rotated || *a.KeyMetadata.CurrentKeyMaterialId == *rots.Rotations[0].KeyMaterialId)
		})
		enc, err := eu.Encrypt(ctx, &kms.EncryptInput{KeyId: &id, Plaintext: []byte("after the crashes")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := us.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	for _, args := range [][]string{nil, {"--ledger-region", "eu-west-1"}} {
		if code, out := cli(t, append([]string{"audit", "verify", "--data-dir", dataDir}, args...)...); code != 0 {
			t.Fatalf("audit verify %v: exit %d\n%s", args, code, out)
		}
	}
}
