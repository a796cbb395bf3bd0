package main

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/keyledger/keyledger/crypto/regionkey"
	"github.com/keyledger/keyledger/gateway/node"
	"github.com/keyledger/keyledger/ledger/backend"
	"github.com/keyledger/keyledger/ledger/material"
	"github.com/keyledger/keyledger/ledger/writer"
)

// peerFlags is --region-peer, repeatable: another deployment's region that
// multi-Region keys replicate to and from.
type peerFlags []node.Peer

func (p *peerFlags) String() string { return "" }

// Set parses REGION,domain=D,writer=KEY[,stream=S].
func (p *peerFlags) Set(v string) error {
	parts := strings.Split(v, ",")
	peer := node.Peer{Region: strings.TrimSpace(parts[0])}
	if !node.ValidRegion(peer.Region) {
		return fmt.Errorf("%q is not a region id", peer.Region)
	}
	for _, kv := range parts[1:] {
		k, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return fmt.Errorf("%q: want name=value", kv)
		}
		switch k {
		case "domain":
			peer.Domain = val
		case "stream":
			peer.Stream = val
		case "writer":
			pub, err := writer.ParsePublic(val)
			if err != nil {
				return err
			}
			peer.Writers = append(peer.Writers, pub)
		default:
			return fmt.Errorf("unknown %q (domain, writer, stream)", k)
		}
	}
	if peer.Domain == "" || len(peer.Writers) == 0 {
		return fmt.Errorf("%s: another deployment's region needs domain= (its JetStream domain) and writer= (its writer public key)", peer.Region)
	}
	*p = append(*p, peer)
	return nil
}

// multiRegion is each region's replication config: its replication key
// (<data-dir>/region-<region>.key, made on first start) and the peers
// outside the process. Nil when there is nothing to replicate to.
func multiRegion(dataDir string, regions []string, peers peerFlags, log *slog.Logger) (map[string]*node.MultiRegion, error) {
	if len(regions) < 2 && len(peers) == 0 {
		return nil, nil
	}
	out := map[string]*node.MultiRegion{}
	for _, r := range regions {
		path := filepath.Join(dataDir, "region-"+r+".key")
		k, created, err := regionkey.LoadOrCreate(path)
		if err != nil {
			return nil, fmt.Errorf("region %s replication key: %w", r, err)
		}
		log.Info("multi-Region key material sent to this region is sealed to its replication key", "region", r, "file", path,
			"created", created)
		out[r] = &node.MultiRegion{Key: k, Peers: append([]node.Peer(nil), peers...)}
	}
	return out, nil
}

// materials is the material store config of the ledger --ledger-region
// names (the first region's, the defaults, without it).
func (bf *backendFlags) materials(b *backend.Backend) material.Config {
	if bf.region == "" {
		return material.Config{}
	}
	cfg := node.ForRegion(node.Config{Region: bf.region}, false).Materials
	if dir := b.ShredDir(); dir != "" {
		cfg.ShredDir = filepath.Join(dir, bf.region)
	}
	return cfg
}
