package tests

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/keyledger/keyledger/gateway/node"
	"github.com/keyledger/keyledger/ledger/writer"
)

// TestMultiRegionLag measures replication lag with the replicator's
// production settings (1 s interval, woken at once by each commit): how
// long until a replica is usable after ReplicateKey, and until a rotation
// on the primary is current in both regions, in one process and across
// two deployments (two nats-servers in their own JetStream domains joined
// by a leaf node); and across the deployments, how long after a cut link
// heals the change made meanwhile is current in both. Figures go to the
// log (README); no timed assertion.
//
//	KEYLEDGER_MRK_LAG=20 go test ./tests -run TestMultiRegionLag -v
func TestMultiRegionLag(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("KEYLEDGER_MRK_LAG"))
	if n <= 0 {
		t.Skip("set KEYLEDGER_MRK_LAG=<samples> to measure")
	}
	production := func(r *regionSet) {
		prev := r.configure
		r.configure = func(cfg *node.Config) {
			prev(cfg)
			cfg.MultiRegion.Interval, cfg.MultiRegion.ResendAfter = 0, 0 // the defaults: 1 s, 30 s
		}
	}
	t.Run("one process", func(t *testing.T) {
		r := startRegions(t, []string{usEast, euWest}, withMultiRegion(), production)
		measureLag(t, n, r.client("admin", usEast), r.client("admin", euWest), nil)
	})
	t.Run("two deployments", func(t *testing.T) {
		hubURL, leafPort := startDomain(t, usEast, "")
		proxy := newLinkProxy(t, fmt.Sprintf("127.0.0.1:%d", leafPort))
		leafURL, _ := startDomain(t, euWest, proxy.addr())
		wa, wb := writer.Generate(), writer.Generate()
		a := deploymentWith(t, hubURL, usEast, wa, euWest, wb.Public(), production)
		b := deploymentWith(t, leafURL, euWest, wb, usEast, wa.Public(), production)
		measureLag(t, n, a.client("admin", usEast), b.client("admin", euWest), proxy)
	})
}

func deploymentWith(t *testing.T, natsURL, region string, w *writer.Key, peer string, peerWriter ed25519.PublicKey, more func(*regionSet)) *regionSet {
	return startRegions(t, []string{region}, func(r *regionSet) {
		r.natsURL, r.writer = natsURL, w
	}, withMultiRegion(), func(r *regionSet) {
		prev := r.configure
		r.configure = func(cfg *node.Config) {
			prev(cfg)
			cfg.MultiRegion.Peers = []node.Peer{{Region: peer, Domain: peer, Writers: []ed25519.PublicKey{peerWriter}}}
		}
	}, more)
}

func measureLag(t *testing.T, n int, a, b *kms.Client, link *linkProxy) {
	ctx := context.Background()
	var create, rotate, heal []time.Duration
	current := func(c *kms.Client, id string) string {
		out, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		if err != nil || out.KeyMetadata.CurrentKeyMaterialId == nil {
			return ""
		}
		return *out.KeyMetadata.CurrentKeyMaterialId
	}
	poll := func(what string, cond func() bool) time.Duration {
		began := time.Now()
		for !cond() {
			if time.Since(began) > 60*time.Second {
				t.Fatalf("%s: not within 60s", what)
			}
			time.Sleep(2 * time.Millisecond)
		}
		return time.Since(began)
	}
	for i := 0; i < n; i++ {
		k, err := a.CreateKey(ctx, &kms.CreateKeyInput{MultiRegion: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		id := *k.KeyMetadata.KeyId
		began := time.Now()
		if _, err := a.ReplicateKey(ctx, &kms.ReplicateKeyInput{KeyId: &id, ReplicaRegion: aws.String(euWest)}); err != nil {
			t.Fatal(err)
		}
		poll("replica", func() bool { return current(b, id) != "" })
		create = append(create, time.Since(began))
		old := current(a, id)
		began = time.Now()
		if _, err := a.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: &id}); err != nil {
			t.Fatal(err)
		}
		poll("rotation", func() bool { x := current(a, id); return x != old && current(b, id) == x })
		rotate = append(rotate, time.Since(began))
		if link != nil && i < 5 {
			link.setCut(true)
			old = current(a, id)
			if _, err := a.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: &id}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Second)
			link.setCut(false)
			heal = append(heal, poll("heal", func() bool { x := current(a, id); return x != old && current(b, id) == x }))
		}
	}
	report := func(what string, d []time.Duration) {
		if len(d) == 0 {
			return
		}
		slices.Sort(d)
		t.Logf("%-45s n=%d min %v median %v max %v", what, len(d), d[0].Round(time.Millisecond),
			d[len(d)/2].Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond))
	}
	report("ReplicateKey → replica usable", create)
	report("RotateKeyOnDemand → current in both", rotate)
	report("link healed (after a 2 s cut) → current in both", heal)
}
