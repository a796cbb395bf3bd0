package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/keyledger/keyledger/gateway/awsjson"
	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/backend"
)

// Regions. One process may serve several AWS regions (serve --regions
// us-east-1,eu-west-1): one Node per region, each with its own ledger
// stream, material store, checkpoints, snapshots, scheduler, quotas and
// audit endpoints, all on one backend (one embedded nats-server, or one
// NATS deployment) and one HTTP listener. The first region is the front: it
// owns the listener and hands each request to the region its SigV4
// credential scope names (awsjson.Server.Route). The first region keeps the
// names a single-region deployment has always used (stream KEYLEDGER on
// keyledger.events, bucket keyledger-material, <data-dir>/shred), so an
// existing data directory becomes the first region of a multi-region one
// unchanged; every other region's resources are named after it
// (ForRegion). Regions share the process's principals, root key, writer
// key and checkpoint key: what differs per region is what AWS keeps per
// region — keys, aliases, ARNs, quotas and the audit trail.

// regionPattern is AWS's region id form (ReplicateKey's ReplicaRegion).
var regionPattern = regexp.MustCompile(`^([a-z]+-){2,3}\d+$`)

// ValidRegion reports whether name has the form of an AWS region id
// (us-east-1, us-gov-west-1).
func ValidRegion(name string) bool { return regionPattern.MatchString(name) }

// RegionStream is the ledger stream of a region that is not a deployment's
// first: base's name (KEYLEDGER by default) with the region appended,
// KEYLEDGER_EU_WEST_1.
func RegionStream(base, region string) string {
	if base == "" {
		base = ledger.DefaultStream
	}
	return base + "_" + strings.ToUpper(strings.ReplaceAll(region, "-", "_"))
}

// ForRegion is cfg for cfg.Region served beside a first region by the same
// process or NATS deployment: the ledger stream and its subject, and the
// material bucket, named after the region. The first region's cfg is used
// as it is.
func ForRegion(cfg Config, first bool) Config {
	if first {
		return cfg
	}
	cfg.Ledger.Stream = RegionStream(cfg.Ledger.Stream, cfg.Region)
	cfg.Ledger.Subject = "keyledger." + cfg.Region + ".events"
	bucket := cfg.Materials.Bucket
	if bucket == "" {
		bucket = "keyledger-material"
	}
	cfg.Materials.Bucket = bucket + "-" + cfg.Region
	return cfg
}

// Regions is a process serving several regions: one Node each, the first
// the front that serves HTTP.
type Regions struct {
	nodes []*Node
}

// StartRegions starts one Node per config on b, in order (each cfgs[i] as
// ForRegion makes it; cfgs[0] is the front), and routes requests between
// them. A region that fails to start stops those started before it.
func StartRegions(ctx context.Context, b *backend.Backend, cfgs []Config) (*Regions, error) {
	if len(cfgs) == 0 {
		return nil, errors.New("node: no region to serve")
	}
	seen := map[string]bool{}
	r := &Regions{}
	for i, cfg := range cfgs {
		if !ValidRegion(cfg.Region) || seen[cfg.Region] {
			r.Close(ctx)
			return nil, fmt.Errorf("node: region %q is malformed or named twice", cfg.Region)
		}
		seen[cfg.Region] = true
		if i > 0 {
			cfg = ForRegion(cfg, false)
			if dir := b.ShredDir(); dir != "" && cfg.Materials.ShredDir == "" {
				cfg.Materials.ShredDir = filepath.Join(dir, cfg.Region)
			}
			cfg.routed = true
		}
		if cfg.MultiRegion != nil {
			mr := *cfg.MultiRegion
			mr.Peers = inProcessPeers(cfgs, i, mr.Peers)
			cfg.MultiRegion = &mr
		}
		n, err := Start(ctx, b, cfg)
		if err != nil {
			r.Close(ctx)
			return nil, fmt.Errorf("node: region %s: %w", cfg.Region, err)
		}
		r.nodes = append(r.nodes, n)
	}
	front := r.nodes[0]
	others := map[string]*awsjson.Server{}
	for _, n := range r.nodes[1:] {
		others[n.cfg.Region] = n.http
	}
	front.http.Route(others)
	front.alsoReady.Store(&readyCheck{fn: r.readyOthers})
	return r, nil
}

// Nodes are the regions' nodes, the front first.
func (r *Regions) Nodes() []*Node { return r.nodes }

// Node is the node serving region, or nil.
func (r *Regions) Node(region string) *Node {
	for _, n := range r.nodes {
		if n.cfg.Region == region {
			return n
		}
	}
	return nil
}

// Serve answers requests for every region on ln until Close.
func (r *Regions) Serve(ln net.Listener) error { return r.nodes[0].Serve(ln) }

// Close stops the front's listener (waiting for the requests in flight,
// whichever region answers them), then every region, the front last.
func (r *Regions) Close(ctx context.Context) error {
	var first error
	if len(r.nodes) > 1 {
		front := r.nodes[0]
		for _, n := range r.nodes { // live audit subscribers of any region hold requests open
			n.closeAudit()
		}
		first = front.http.Shutdown(ctx)
		front.httpStopped = true
	}
	for i := len(r.nodes) - 1; i >= 0; i-- {
		if err := r.nodes[i].Close(ctx); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// readyOthers is the front's readiness beyond its own: every other region
// ready too.
func (r *Regions) readyOthers(ctx context.Context) error {
	for _, n := range r.nodes[1:] {
		if err := n.Ready(ctx); err != nil {
			return fmt.Errorf("region %s: %w", n.cfg.Region, err)
		}
	}
	return nil
}

type readyCheck struct{ fn func(context.Context) error }

// inProcessPeers adds to peers every other region served by the process
// that peers does not name, with its ledger stream.
func inProcessPeers(cfgs []Config, self int, peers []Peer) []Peer {
	out := slices.Clone(peers)
	for j, c := range cfgs {
		if j == self || slices.ContainsFunc(out, func(p Peer) bool { return p.Region == c.Region }) {
			continue
		}
		stream := c.Ledger.Stream
		if j > 0 {
			stream = RegionStream(c.Ledger.Stream, c.Region)
		}
		out = append(out, Peer{Region: c.Region, Stream: stream})
	}
	return out
}
