package tests

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/gateway/sigv4"
	"github.com/keyledger/keyledger/gateway/writerclient"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/writer"
)

// withOwnWriter gives the instance a writer key of its own, as every
// instance of a deployment has; a second one must be registered.
func withOwnWriter() option { return func(i *instance) { i.writer = writer.Generate() } }

// withRoot gives the instance the deployment's root key.
func withRoot(k rootkey.Key) option { return func(i *instance) { i.root = k } }

// gateways starts n instances of one deployment on the NATS server at
// url, each with its own writer key and the same root key: the first
// registers its key itself, the others are registered through it (what
// `keyledger writer register` sends, as admin of the operator account),
// and each then writes without a restart.
func gateways(t *testing.T, url string, n int, opts ...option) []*instance {
	t.Helper()
	first := start(t, append([]option{withNATS(url), withOwnWriter(), withOperator(testAccount)}, opts...)...)
	gws := []*instance{first}
	for len(gws) < n {
		in := start(t, append([]option{withNATS(url), withOwnWriter(), withRoot(first.root), withOperator(testAccount)}, opts...)...)
		register(t, first, in)
		gws = append(gws, in)
	}
	return gws
}

// register has the registered instance via register in's writer key, and
// waits until in writes.
func register(t *testing.T, via, in *instance) {
	t.Helper()
	c := &writerclient.Client{Endpoint: via.endpoint, Region: testRegion,
		Credentials: sigv4.Credentials{AccessKeyID: testCredentials["admin"][0], Secret: testCredentials["admin"][1]}}
	r, err := c.Register(context.Background(), in.writer.PublicText())
	if err != nil || r.WriterID != in.writer.ID() {
		t.Fatalf("registering %s: %+v %v", in.writer.ID(), r, err)
	}
	waitUntil(t, 10*time.Second, "the instance to fold its registration", func() bool {
		return in.node.Ledger.Registered(in.writer.ID()) && in.node.Ready(context.Background()) == nil
	})
}

// caughtUp waits until every instance folded everything the stream holds.
func caughtUp(t *testing.T, gws ...*instance) {
	t.Helper()
	for _, in := range gws {
		if err := in.node.Ledger.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// errCode is the AWS error code of err ("" for none, "?" for a failure
// without one: a transport error).
func errCode(err error) string {
	if err == nil {
		return ""
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return "?"
}

// TestSecondGatewayIsRegisteredNotCopied: a second instance with a writer
// key of its own serves nothing (503, not ready, saying what to run) until
// an operator registers its key with `keyledger writer register` through
// the first; then it writes, without a restart, and a verifier sees which
// writer wrote what.
func TestSecondGatewayIsRegisteredNotCopied(t *testing.T) {
	port := freePort(t)
	startNATS(t, t.TempDir(), port)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	a := start(t, withNATS(url), withOwnWriter(), withOperator(testAccount))
	b := start(t, withNATS(url), withOwnWriter(), withRoot(a.root), withOperator(testAccount))
	ctx := context.Background()
	_, err := b.kms.CreateKey(ctx, &kms.CreateKeyInput{})
	if code := errCode(err); code != "ServiceUnavailableException" {
		t.Fatalf("an unregistered instance answered %v, want ServiceUnavailableException", err)
	}
	if err := b.node.Ready(ctx); err == nil || !strings.Contains(err.Error(), "keyledger writer register") || !strings.Contains(err.Error(), b.writer.PublicText()) {
		t.Fatalf("an unregistered instance's readiness: %v", err)
	}
	// The documented command, as an operator runs it.
	t.Setenv("AWS_ACCESS_KEY_ID", testCredentials["alice"][0])
	t.Setenv("AWS_SECRET_ACCESS_KEY", testCredentials["alice"][1])
	if code, out := cli(t, "writer", "register", "--url", a.endpoint, "--pubkey", b.writer.PublicText()); code == 0 || !strings.Contains(out, "AccessDenied") {
		t.Fatalf("alice (no keyledger:RegisterWriter) registered a writer: exit %d\n%s", code, out)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", testCredentials["admin"][0])
	t.Setenv("AWS_SECRET_ACCESS_KEY", testCredentials["admin"][1])
	code, out := cli(t, "writer", "register", "--url", a.endpoint, "--pubkey", b.writer.PublicText())
	if code != 0 || !strings.Contains(out, b.writer.ID()+" registered") {
		t.Fatalf("writer register: exit %d\n%s", code, out)
	}
	waitUntil(t, 10*time.Second, "b to fold its registration", func() bool { return b.node.Ready(ctx) == nil })
	kb := b.createKey("written by b")
	ka := a.createKey("written by a")
	// At once on the other instance: a key it does not know yet is looked
	// up again once it folded what the ledger holds.
	if _, err := b.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &ka, Plaintext: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	code, out = cli(t, "writer", "list", "--url", b.endpoint)
	if code != 0 || !strings.Contains(out, a.writer.ID()) || !strings.Contains(out, b.writer.ID()) {
		t.Fatalf("writer list: exit %d\n%s", code, out)
	}
	caughtUp(t, a, b)
	// Each writer's data chain holds what it wrote, signed by it.
	writers := map[string]string{} // operation on a key → writer
	for _, r := range a.records() {
		if r.Event.KeyID == kb || r.Event.KeyID == ka {
			writers[r.Event.Operation+" "+r.Event.KeyID] = r.Writer
			if id, data := chain.DataWriter(r.Event.Chain); data && id != r.Writer {
				t.Fatalf("an event on %s's data chain signed by %s", id, r.Writer)
			}
		}
	}
	if writers["CreateKey "+kb] != b.writer.ID() || writers["CreateKey "+ka] != a.writer.ID() || writers["Encrypt "+ka] != b.writer.ID() {
		t.Fatalf("who wrote what: %v", writers)
	}
	// audit verify names who wrote what.
	code, out = cli(t, "audit", "verify", "--nats-url", url)
	if code != 0 || !strings.Contains(out, "OK:") || !strings.Contains(out, "written by writer "+a.writer.ID()) ||
		!strings.Contains(out, "written by writer "+b.writer.ID()) || !strings.Contains(out, "control chains:") {
		t.Fatalf("audit verify: exit %d\n%s", code, out)
	}
}

// TestGatewaysWriteTogether: several gateways of one deployment serve
// writes at once, through the real SDK: concurrent CreateKey, Disable,
// Enable and alias changes on shared keys and Encrypts on both. No request
// is answered with a server error for losing a race, every acknowledged
// change is in the ledger, both instances end with the same state, and
// every chain and the global tree verify. KEYLEDGER_TEST_GATEWAYS sets how
// long (default 5s; a Go duration).
func TestGatewaysWriteTogether(t *testing.T) {
	d := 5 * time.Second
	if v := os.Getenv("KEYLEDGER_TEST_GATEWAYS"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	port := freePort(t)
	startNATS(t, t.TempDir(), port)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	gws := gateways(t, url, 2)
	ctx := context.Background()
	shared := []string{gws[0].createKey("shared 0"), gws[1].createKey("shared 1")}
	caughtUp(t, gws...)
	var mu sync.Mutex
	codes := map[string]int{} // error code → count
	var ok atomic.Int64
	created := map[string]bool{}
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for g, in := range gws {
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := in.as("admin")
				rng := rand.New(rand.NewPCG(uint64(g), uint64(w)))
				for time.Now().Before(stop) {
					k := shared[rng.IntN(len(shared))]
					alias := fmt.Sprintf("alias/shared-%d", rng.IntN(3))
					var err error
					switch rng.IntN(6) {
					case 0:
						var out *kms.CreateKeyOutput
						if out, err = c.CreateKey(ctx, &kms.CreateKeyInput{}); err == nil {
							mu.Lock()
							created[*out.KeyMetadata.KeyId] = true
							mu.Unlock()
						}
					case 1:
						_, err = c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: &k})
					case 2:
						_, err = c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: &k})
					case 3:
						_, err = c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: &alias, TargetKeyId: &k})
					case 4:
						_, err = c.UpdateAlias(ctx, &kms.UpdateAliasInput{AliasName: &alias, TargetKeyId: &k})
					default:
						_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x")})
					}
					mu.Lock()
					codes[errCode(err)]++
					mu.Unlock()
					if err == nil {
						ok.Add(1)
					}
				}
			}()
		}
	}
	wg.Wait()
	t.Logf("%d requests answered: %v", ok.Load(), codes)
	for code, n := range codes {
		switch code {
		case "", "AlreadyExistsException", "NotFoundException", "DisabledException":
			// answers about the state
		default:
			t.Errorf("%d requests answered %s", n, code)
		}
	}
	if ok.Load() < 20 {
		t.Fatalf("only %d requests succeeded; log:\n%s", ok.Load(), tail(gws[0].logs.String(), 3000))
	}
	// Following each other leaves no consumer on the ledger stream.
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if st, err := js.Stream(ctx, "KEYLEDGER"); err != nil || st.CachedInfo().State.Consumers != 0 {
		t.Fatalf("the ledger stream: %v, consumers %+v", err, st)
	}
	caughtUp(t, gws...)
	// The same state on both, holding every key created.
	sa, sb := gws[0].node.State.Snapshot(), gws[1].node.State.Snapshot()
	if len(sa.Keys) != len(sb.Keys) || len(sa.Keys) != len(created)+len(shared) {
		t.Fatalf("keys: %d on a, %d on b, %d created", len(sa.Keys), len(sb.Keys), len(created)+len(shared))
	}
	for id := range created {
		if _, ok := gws[1].node.State.Key(id); !ok {
			t.Fatalf("key %s, acknowledged, is not in b's state", id)
		}
	}
	if gws[0].node.Ledger.Head() != gws[1].node.Ledger.Head() {
		t.Fatalf("heads differ: %+v and %+v", gws[0].node.Ledger.Head(), gws[1].node.Ledger.Head())
	}
	rep, err := chain.Audit(ctx, gws[0].node.Ledger)
	if err != nil || len(rep.Quarantined) > 0 {
		t.Fatalf("audit: %v %v", err, rep.Quarantined)
	}
	dataChains := 0
	for name := range rep.Chains {
		if _, ok := chain.DataWriter(name); ok {
			dataChains++
		}
	}
	if dataChains != 2 {
		t.Fatalf("%d data chains, want one per gateway: %v", dataChains, rep.Chains)
	}
	if _, err := gws[1].node.Checkpointer.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	vkey := filepath.Join(t.TempDir(), "checkpoint.pub")
	if err := os.WriteFile(vkey, []byte(gws[1].vkey), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := cli(t, "audit", "verify", "--nats-url", url, "--pubkey", vkey); code != 0 || !strings.Contains(out, "OK:") ||
		!strings.Contains(out, "verified with") {
		t.Fatalf("audit verify: exit %d\n%s", code, out)
	}
	_ = aws.String
	_ = event.Record{}
}

// tail is the end of s, at most n bytes.
func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
