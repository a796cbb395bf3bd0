package node

import (
	"context"
	"crypto/ed25519"
	"strings"
	"time"

	"github.com/keyledger/keyledger/crypto/regionkey"
	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/replication"
)

// MultiRegion configures how a region exchanges multi-Region keys with
// other regions: its replication key, the peer regions and how often the
// replicator looks for work. Within one process (StartRegions) every other
// region served is a peer without being listed.
type MultiRegion struct {
	Key   *regionkey.Key
	Peers []Peer
	// Interval is how often the state is checked for what to send
	// (default 1s); ResendAfter how soon an unconfirmed message is sent
	// again (default 30s).
	Interval, ResendAfter time.Duration
}

// Peer is another region related keys may live in.
type Peer struct {
	Region string
	// Stream is the peer's ledger stream (default KEYLEDGER, a
	// deployment's first region); its replication outbox is named after it.
	Stream string
	// Domain is the peer's JetStream domain when it is another deployment
	// (joined by a leaf node or gateway); empty when it shares this one's
	// JetStream.
	Domain string
	// Writers are the writer keys whose signatures this region accepts
	// on the peer's messages (default: this region's own writer key, as
	// regions of one process or deployment share it).
	Writers []ed25519.PublicKey
}

// outbox and inbox name a region's replication streams after its ledger
// stream.
func outbox(ledgerStream string) string { return ledgerStream + "_MRK_OUT" }
func inbox(ledgerStream string) string  { return ledgerStream + "_MRK_IN" }

// openReplicator opens the replication streams and builds the service's
// replicator (buildService; nothing without a MultiRegion config).
func (n *Node) openReplicator(ctx context.Context, svc *keyservice.Service) error {
	mr := n.cfg.MultiRegion
	if mr == nil {
		return nil
	}
	stream := n.cfg.Ledger.Stream
	if stream == "" {
		stream = ledger.DefaultStream
	}
	rcfg := replication.Config{Region: n.cfg.Region, Outbox: outbox(stream), Inbox: inbox(stream)}
	trust := map[string][]ed25519.PublicKey{}
	for _, p := range mr.Peers {
		ps := p.Stream
		if ps == "" {
			ps = ledger.DefaultStream
		}
		peer := replication.Peer{Region: p.Region, Outbox: outbox(ps)}
		if p.Domain != "" {
			peer.APIPrefix = "$JS." + p.Domain + ".API"
		}
		rcfg.Peers = append(rcfg.Peers, peer)
		trust[p.Region] = p.Writers
		if len(p.Writers) == 0 && n.cfg.Ledger.Writer != nil {
			trust[p.Region] = []ed25519.PublicKey{n.cfg.Ledger.Writer.Public()}
		}
	}
	link, err := n.b.OpenReplication(ctx, rcfg)
	if err != nil {
		return err
	}
	n.Replicator = svc.NewReplicator(keyservice.ReplicatorConfig{Link: link, Key: mr.Key, Writer: n.cfg.Ledger.Writer,
		Peers: trust, Interval: mr.Interval, ResendAfter: mr.ResendAfter})
	n.replication = link
	n.kicks.Store(n.Replicator)
	return nil
}

// kickReplicator wakes the replicator when a committed event concerns a
// multi-Region key or a peer region (fold, on the writer's goroutine).
func (n *Node) kickReplicator(recs []event.Record) {
	rep := n.kicks.Load() // the writer may fold before buildService made it
	if rep == nil {
		return
	}
	for _, r := range recs {
		if strings.HasPrefix(r.Event.KeyID, "mrk-") || r.Event.Body.Type() == event.TypePeerRegionRegistered {
			rep.Kick()
			return
		}
	}
}

// startReplicator runs the replicator: receiving from the peers' outboxes
// and sending what the state owes them.
func (n *Node) startReplicator() {
	if n.Replicator == nil {
		return
	}
	n.workers.start("replicator", n.Replicator.Run)
}

// ReplicationSources reports, per peer region, how many of its messages
// the link has yet to copy here, and how many wait in this region's inbox.
func (n *Node) ReplicationSources(ctx context.Context) ([]replication.SourceState, uint64, error) {
	if n.replication == nil {
		return nil, 0, nil
	}
	return n.replication.Sources(ctx)
}
