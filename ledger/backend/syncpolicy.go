package backend

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// SyncReport is what CheckSync found on one NATS server's monitoring
// endpoint.
type SyncReport struct {
	URL          string        // the /varz URL read
	Server       string        // the server's name
	SyncAlways   bool          // jetstream { sync_interval: always }
	SyncInterval time.Duration // otherwise how often it fsyncs (0: the 2 min default)
}

// CheckSync reads each NATS server's monitoring endpoint (its http_port,
// e.g. http://n1:8222) and reports whether its JetStream fsyncs every
// write. keyledger's own NATS user cannot read a server's configuration
// (only the system account can), so this is the one way to check the
// setting a single-replica ledger's durability rests on.
func CheckSync(ctx context.Context, client *http.Client, monitorURLs []string) ([]SyncReport, error) {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	var out []SyncReport
	for _, raw := range monitorURLs {
		u, err := url.Parse(strings.TrimSuffix(strings.TrimSpace(raw), "/"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("backend: NATS monitoring URL %q: want http(s)://host:port", raw)
		}
		u.Path = strings.TrimSuffix(u.Path, "/varz") + "/varz"
		r, err := readVarz(ctx, client, u.String())
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func readVarz(ctx context.Context, client *http.Client, u string) (SyncReport, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return SyncReport{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return SyncReport{}, fmt.Errorf("backend: reading %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return SyncReport{}, fmt.Errorf("backend: reading %s: HTTP %d", u, resp.StatusCode)
	}
	var v struct {
		Name      string `json:"server_name"`
		JetStream struct {
			Config *struct {
				SyncInterval int64 `json:"sync_interval"` // nanoseconds
				SyncAlways   bool  `json:"sync_always"`
			} `json:"config"`
		} `json:"jetstream"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&v); err != nil {
		return SyncReport{}, fmt.Errorf("backend: %s is not a NATS /varz answer: %w", u, err)
	}
	if v.JetStream.Config == nil {
		return SyncReport{}, fmt.Errorf("backend: %s: the server has no JetStream", u)
	}
	return SyncReport{URL: u, Server: v.Name, SyncAlways: v.JetStream.Config.SyncAlways,
		SyncInterval: time.Duration(v.JetStream.Config.SyncInterval)}, nil
}
