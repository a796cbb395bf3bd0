package tests

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/keyledger/keyledger/gateway/node"
	"github.com/keyledger/keyledger/ledger/writer"
)

// linkProxy forwards TCP connections to target until cut; heal lets them
// through again.
type linkProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  []net.Conn
}

func newLinkProxy(t *testing.T, target string) *linkProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &linkProxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.setCut(true) })
	return p
}

func (p *linkProxy) addr() string { return p.ln.Addr().String() }

func (p *linkProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); up.Close() }()
		go func() { _, _ = io.Copy(c, up); c.Close() }()
	}
}

// setCut cuts (closing every connection) or heals the link.
func (p *linkProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// startDomain starts a nats-server with JetStream in its own domain; with
// hub set it joins hub's leaf node port as a leaf, passing only JetStream
// between the two: keyledger's own subjects (keyledger.>) stay in each
// deployment, as a production link must be configured (README).
func startDomain(t *testing.T, domain string, hub string) (clientURL string, leafPort int) {
	t.Helper()
	leaf := freePort(t)
	opts := &server.Options{ServerName: "kl-" + domain, Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		JetStreamDomain: domain, StoreDir: t.TempDir(), NoSigs: true, NoLog: true}
	if hub == "" {
		opts.LeafNode = server.LeafNodeOpts{Host: "127.0.0.1", Port: leaf, NoAdvertise: true} // leaves reach it only through the proxy
	} else {
		u, err := urlParse("nats-leaf://" + hub)
		if err != nil {
			t.Fatal(err)
		}
		opts.LeafNode = server.LeafNodeOpts{ReconnectInterval: 100 * time.Millisecond, Remotes: []*server.RemoteLeafOpts{{
			URLs: []*url.URL{u}, DenyImports: []string{"keyledger.>"}, DenyExports: []string{"keyledger.>"}}}}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(30 * time.Second) {
		t.Fatalf("nats-server %s not ready (leaf node port %d)", domain, leaf)
	}
	return ns.ClientURL(), leaf
}

var urlParse = url.Parse

// deployment is one keyledger deployment serving one region on its own
// NATS (JetStream domain), with the other as its peer.
func deployment(t *testing.T, natsURL, region string, w *writer.Key, peer string, peerWriter ed25519.PublicKey) *regionSet {
	return startRegions(t, []string{region}, func(r *regionSet) {
		r.natsURL, r.writer = natsURL, w
	}, withMultiRegion(), func(r *regionSet) {
		prev := r.configure
		r.configure = func(cfg *node.Config) {
			prev(cfg)
			cfg.MultiRegion.Peers = []node.Peer{{Region: peer, Domain: peer, Writers: []ed25519.PublicKey{peerWriter}}}
		}
	})
}

// TestMultiRegionTwoDeployments: two deployments, each its own nats-server
// in its own JetStream domain, joined by a leaf node link that carries
// nothing but JetStream. A key replicated from one is used in the other;
// while the link is cut both keep serving, a rotation on the primary waits
// for the replica (the primary keeps its material); when the link heals the
// change arrives, and the primary moves and a replica is deleted across it.
func TestMultiRegionTwoDeployments(t *testing.T) {
	t.Parallel()
	hubURL, leafPort := startDomain(t, usEast, "")
	proxy := newLinkProxy(t, fmt.Sprintf("127.0.0.1:%d", leafPort))
	leafURL, _ := startDomain(t, euWest, proxy.addr())
	wa, wb := writer.Generate(), writer.Generate()
	a := deployment(t, hubURL, usEast, wa, euWest, wb.Public())
	b := deployment(t, leafURL, euWest, wb, usEast, wa.Public())
	ctx := context.Background()
	us, eu := a.client("admin", usEast), b.client("admin", euWest)

	created, err := us.CreateKey(ctx, &kms.CreateKeyInput{MultiRegion: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	id := *created.KeyMetadata.KeyId
	began := time.Now()
	if _, err := us.ReplicateKey(ctx, &kms.ReplicateKeyInput{KeyId: &id, ReplicaRegion: aws.String(euWest)}); err != nil {
		t.Fatal(err)
	}
	md := waitKeyState(t, eu, id, "Enabled")
	t.Logf("two deployments: replica usable %v after ReplicateKey", time.Since(began).Round(time.Millisecond))
	enc, err := us.Encrypt(ctx, &kms.EncryptInput{KeyId: &id, Plaintext: []byte("from us")})
	if err != nil {
		t.Fatal(err)
	}
	decryptTo(t, eu, enc.CiphertextBlob, "from us", "eu decrypts us")

	// Cut the link. Both deployments keep serving their keys; the
	// primary's rotation cannot reach the replica, so the primary keeps
	// encrypting under material the replica holds.
	proxy.setCut(true)
	old := *md.CurrentKeyMaterialId
	if _, err := us.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: &id}); err != nil {
		t.Fatal(err)
	}
	if _, err := us.UpdateKeyDescription(ctx, &kms.UpdateKeyDescriptionInput{KeyId: &id, Description: aws.String("not shared")}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // several replicator rounds with the link down
	during, err := us.Encrypt(ctx, &kms.EncryptInput{KeyId: &id, Plaintext: []byte("during the cut")})
	if err != nil {
		t.Fatal(err)
	}
	if out, _ := us.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id}); *out.KeyMetadata.CurrentKeyMaterialId != old {
		t.Fatal("the primary made material current that the cut-off replica lacks")
	}
	decryptTo(t, eu, during.CiphertextBlob, "during the cut", "eu decrypts during the cut")
	fromEU, err := eu.Encrypt(ctx, &kms.EncryptInput{KeyId: &id, Plaintext: []byte("eu during the cut")})
	if err != nil {
		t.Fatal(err)
	}

	// Heal it: the rotation arrives, then becomes current in both.
	healed := time.Now()
	proxy.setCut(false)
	var current string
	waitUntil(t, 60*time.Second, "the rotation current in both deployments after healing", func() bool {
		x, err1 := us.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		y, err2 := eu.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		if err1 != nil || err2 != nil {
			return false
		}
		current = *x.KeyMetadata.CurrentKeyMaterialId
		return current != old && *y.KeyMetadata.CurrentKeyMaterialId == current
	})
	t.Logf("two deployments: rotation current in both %v after the link healed", time.Since(healed).Round(time.Millisecond))
	decryptTo(t, us, fromEU.CiphertextBlob, "eu during the cut", "us decrypts eu's ciphertext from the cut")
	if out, _ := eu.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id}); aws.ToString(out.KeyMetadata.Description) == "not shared" {
		t.Fatal("the description was shared")
	}
	rotated := time.Now()
	if _, err := us.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: &id}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "a rotation current in both", func() bool {
		x, err1 := us.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		y, err2 := eu.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		return err1 == nil && err2 == nil && *x.KeyMetadata.CurrentKeyMaterialId != current &&
			*y.KeyMetadata.CurrentKeyMaterialId == *x.KeyMetadata.CurrentKeyMaterialId
	})
	t.Logf("two deployments: rotation current in both %v after RotateKeyOnDemand (link up)", time.Since(rotated).Round(time.Millisecond))

	// The replica's keyledger is down (its NATS keeps sourcing): the
	// change waits in its inbox and is applied when it starts again.
	b.down()
	if _, err := us.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: &id, RotationPeriodInDays: aws.Int32(90)}); err != nil {
		t.Fatal(err)
	}
	b.up()
	eu = b.client("admin", euWest)
	waitUntil(t, 30*time.Second, "the rotation period reaches the restarted replica", func() bool {
		st, err := eu.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: &id})
		return err == nil && st.KeyRotationEnabled && aws.ToInt32(st.RotationPeriodInDays) == 90
	})

	// The primary moves across the link.
	if _, err := us.UpdatePrimaryRegion(ctx, &kms.UpdatePrimaryRegionInput{KeyId: &id, PrimaryRegion: aws.String(euWest)}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "eu-west-1 primary", func() bool {
		x, err1 := us.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		y, err2 := eu.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		return err1 == nil && err2 == nil && x.KeyMetadata.KeyState == types.KeyStateEnabled &&
			x.KeyMetadata.MultiRegionConfiguration.MultiRegionKeyType == types.MultiRegionKeyTypeReplica &&
			y.KeyMetadata.MultiRegionConfiguration.MultiRegionKeyType == types.MultiRegionKeyTypePrimary
	})
	// The replica (now us-east-1) is deleted after its window; the primary
	// then lists none.
	if _, err := us.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &id, PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	a.clock.Advance(8 * 24 * time.Hour)
	waitUntil(t, 30*time.Second, "the primary lists no replica", func() bool {
		y, err := eu.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		return err == nil && len(y.KeyMetadata.MultiRegionConfiguration.ReplicaKeys) == 0
	})
	_, err = us.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
	wantCode(t, err, "NotFoundException")
	decryptTo(t, eu, enc.CiphertextBlob, "from us", "the primary still decrypts")
}
