package embedded

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Ledger segments. The ledger's segment streams are named <stream>_<n>
// (ledger/segments.go), and NATS subjects match whole tokens only, so no
// import can name "every segment": each segment stream's read API is
// imported into every reader's account by name (from the read proxy's
// subjects for that account, readproxy.go). The embedded
// server derives that list from the live streams: at start from the
// streams JetStream holds, and then from JetStream's stream-created
// advisories. It always links segmentLookahead segments past the newest,
// so a segment a writer has just created is readable before its advisory
// has arrived. Links are never removed: a link to a stream that is gone
// (an archived segment, removed) answers "stream not found".
//
// The audit identity's publish permissions allow the per-stream read API
// of any stream name (…STREAM.INFO.*, …DIRECT.GET.*, …), since permissions
// cannot name a prefix within a token either. That is safe because the
// permissions are not what bounds it: in the audit account a subject
// reaches keyledger's account only through an import (above: the ledger's
// own streams, never the material bucket), the read proxy forwards only
// what arrived through one, the account has no JetStream of its own, and
// no audit identity may subscribe to API subjects there.
const segmentLookahead = 8

// segments links the ledger's segment streams for the reading identities
// (audit and backup).
type segments struct {
	keyledger *server.Account
	readers   []*server.Account
	prefixes  []string // "<stream>_" of each audit stream

	mu     sync.Mutex
	linked map[string]int // stream prefix → highest segment linked
	sub    *nats.Subscription
}

// segmentOf returns the audit stream prefix and segment number of a
// segment stream name, or ok false.
func (g *segments) segmentOf(name string) (prefix string, n int, ok bool) {
	for _, p := range g.prefixes {
		rest, found := strings.CutPrefix(name, p)
		if !found || rest == "" || strings.Trim(rest, "0123456789") != "" {
			continue
		}
		n, err := strconv.Atoi(rest)
		if err != nil || n < 1 {
			continue
		}
		return p, n, true
	}
	return "", 0, false
}

// saw links every segment of prefix up to n+segmentLookahead not linked yet.
func (g *segments) saw(prefix string, n int) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for m := g.linked[prefix] + 1; m <= n+segmentLookahead; m++ {
		for _, r := range g.readers {
			if err := linkStream(g.keyledger, r, prefix+strconv.Itoa(m)); err != nil {
				return err
			}
		}
		g.linked[prefix] = m
	}
	return nil
}

// watchSegments links the segments that exist and those created from now
// on, through nc (keyledger's own in-process connection).
func watchSegments(nc *nats.Conn, keyledger *server.Account, readers []*server.Account, streams []string) (*segments, error) {
	g := &segments{keyledger: keyledger, readers: readers, linked: map[string]int{}}
	for _, s := range streams {
		g.prefixes = append(g.prefixes, s+"_")
	}
	// Subscribe first, then list: a stream created in between is seen by one
	// of the two.
	sub, err := nc.Subscribe(server.JSAdvisoryStreamCreatedPre+".*", func(m *nats.Msg) {
		name := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
		if p, n, ok := g.segmentOf(name); ok {
			_ = g.saw(p, n) // a failed link shows as a refused read; the next segment retries
		}
	})
	if err != nil {
		return nil, err
	}
	g.sub = sub
	for _, p := range g.prefixes {
		if err := g.saw(p, 0); err != nil {
			return nil, err
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	names := js.StreamNames(ctx)
	for name := range names.Name() {
		if p, n, ok := g.segmentOf(name); ok {
			if err := g.saw(p, n); err != nil {
				return nil, err
			}
		}
	}
	if err := names.Err(); err != nil {
		return nil, fmt.Errorf("embedded: listing streams: %w", err)
	}
	return g, nil
}

// highest reports the highest segment linked for an audit stream.
func (g *segments) highest(stream string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.linked[stream+"_"]
}
