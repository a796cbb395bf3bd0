package main

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/keyledger/keyledger/ledger/backend"
)

// checkSingleReplica says where a --replicas 1 ledger's durability stands:
// it rests on one NATS server fsyncing every write. With monitoring URLs
// it reads each server's setting and warns only when one does not; without
// them it cannot know (keyledger's NATS user cannot read a server's
// configuration), and says so.
func checkSingleReplica(log *slog.Logger, monitorURLs string) {
	const risk = "with --replicas 1 an acknowledged event is on a single server, and nats-server acknowledges before " +
		"fsync by default (sync_interval 2m), so a power cut can lose acknowledged events. Set `jetstream { sync_interval: always }` " +
		"on that server, or run a 3-node cluster with --replicas 3."
	if monitorURLs == "" {
		log.Warn("DURABILITY RESTS ON ONE NATS SERVER'S FSYNC SETTING, which keyledger could not check (give --nats-monitor-url "+
			"to have it read from the server's /varz): "+risk, "checked", "nothing")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reports, err := backend.CheckSync(ctx, nil, strings.Split(monitorURLs, ","))
	if err != nil {
		log.Warn("DURABILITY RESTS ON ONE NATS SERVER'S FSYNC SETTING, which keyledger could not check: "+risk, "error", err)
		return
	}
	for _, r := range reports {
		if !r.SyncAlways {
			interval := r.SyncInterval.String()
			if r.SyncInterval == 0 {
				interval = "2m0s (default)"
			}
			log.Warn("DURABILITY RESTS ON ONE NATS SERVER'S FSYNC SETTING, and this server does not fsync every write: "+risk,
				"server", r.Server, "varz", r.URL, "sync_interval", interval)
			return
		}
	}
	for _, r := range reports {
		log.Info("checked: the NATS server fsyncs every write (sync_interval: always)", "server", r.Server, "varz", r.URL)
	}
}
