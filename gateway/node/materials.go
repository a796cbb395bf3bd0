package node

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/ledger/backend"
)

// DefaultMaterialCheckInterval is how often the background verifier reads
// every live key material again from both stored copies.
const DefaultMaterialCheckInterval = time.Hour

// materialWatch checks every live key material's two stored copies at
// start and then periodically (keyservice.CheckMaterials): a damaged copy
// is repaired from the other and logged; a material no copy opens raises
// an ALARM naming its key and makes the instance not ready (rule 13).
type materialWatch struct {
	svc *keyservice.Service
	log *slog.Logger

	mu     sync.Mutex
	damage string // the keys whose material is unreadable; "" when none
}

// Damage says which keys' material no copy opens, or "".
func (w *materialWatch) Damage() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.damage
}

// check runs one check and logs what it found.
func (w *materialWatch) check(ctx context.Context) {
	started := time.Now()
	res, err := w.svc.CheckMaterials(ctx)
	if ctx.Err() != nil || res.Skipped {
		return
	}
	if err != nil {
		w.log.Error("key material check failed; will retry", "error", err)
		return
	}
	for id, parts := range res.Repaired {
		w.log.Warn("key material repaired from its other stored copy", "material", id, "rewritten", strings.Join(parts, ", "))
	}
	if res.Dropped > 0 {
		w.log.Warn("damaged per-material key slots zeroed: every key they could hold is readable elsewhere", "slots", res.Dropped)
	}
	var damage string
	if len(res.Unreadable) > 0 {
		var keys, causes []string
		for _, u := range res.Unreadable {
			keys = append(keys, u.KeyID)
			causes = append(causes, u.Cause)
		}
		damage = fmt.Sprintf("key material of %d key(s) is unreadable in every stored copy: keys %s", len(keys), strings.Join(keys, ", "))
		w.log.Error("ALARM: "+damage+"; requests that need it fail. Restore each from a backup: "+
			"keyledger material restore --from BACKUP --key KEY-ID (server stopped)", "causes", strings.Join(causes, " | "))
	}
	w.mu.Lock()
	w.damage = damage
	w.mu.Unlock()
	w.log.Info("key material checked", "materials", res.Materials, "repaired", len(res.Repaired),
		"unreadable", len(res.Unreadable), "took", time.Since(started).Round(time.Millisecond))
}

// run checks every interval until ctx ends.
func (w *materialWatch) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.check(ctx)
		}
	}
}

// startMaterialCheck checks every live material's copies again every
// MaterialCheckInterval (negative: only the check at start).
func (n *Node) startMaterialCheck() {
	every := n.cfg.MaterialCheckInterval
	if every < 0 {
		return
	}
	if every == 0 {
		every = DefaultMaterialCheckInterval
	}
	n.workers.start("material-check", func(ctx context.Context) { n.materials.run(ctx, every) })
}

// diagnoser reads the embedded server's block files of a damaged ledger
// and summarises what they hold and what is lost.
func diagnoser(b *backend.Backend, stream string) func(context.Context) string {
	return func(ctx context.Context) string {
		rep, err := b.Diagnose(ctx, stream)
		if err != nil {
			return "cannot be read: " + err.Error()
		}
		if rep == nil {
			return ""
		}
		return strings.ReplaceAll(strings.TrimSpace(rep.Summary()), "\n", "; ")
	}
}
