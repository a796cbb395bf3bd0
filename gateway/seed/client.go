package seed

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/gateway/sigv4"
)

// Request is the body of POST /seed (package seedapi): the seed file's
// text, and whether the caller asks for development mode (key material
// for AWS_KMS keys).
type Request struct {
	Seed string `json:"Seed"`
	Dev  bool   `json:"Dev"`
}

// Client seeds a running deployment through POST /seed. It never logs or
// returns the secret it signs with, nor the seed's key material.
type Client struct {
	Endpoint    string
	Region      string
	Credentials sigv4.Credentials
	HTTP        *http.Client // default: http.DefaultClient
}

// Seed sends a seed file and returns what the server did with each entry.
func (c *Client) Seed(ctx context.Context, file []byte, dev bool) (*keyservice.SeedOutput, error) {
	if err := c.Credentials.Check(); err != nil {
		return nil, err
	}
	body, err := json.Marshal(Request{Seed: string(file), Dev: dev})
	if err != nil {
		return nil, err
	}
	defer clear(body)
	base, err := url.Parse(strings.TrimSuffix(c.Endpoint, "/"))
	if err != nil {
		return nil, fmt.Errorf("seed: endpoint: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base.String()+"/seed", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	req.Header.Set("X-Amz-Date", now.Format(sigv4.AmzDateFormat))
	req.Header.Set("Content-Type", "application/json")
	headers := []sigv4.Header{{Name: "host", Value: req.URL.Host}, {Name: "x-amz-date", Value: req.Header.Get("X-Amz-Date")},
		{Name: "content-type", Value: "application/json"}}
	req.Header.Set("Authorization", sigv4.Sign(c.Credentials, c.Region, "kms", http.MethodPost, "/seed", headers, body, now))
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Type != "" {
			return nil, fmt.Errorf("%s: %s (HTTP %d)", e.Type, e.Message, resp.StatusCode)
		}
		return nil, fmt.Errorf("HTTP %d from /seed", resp.StatusCode)
	}
	var out keyservice.SeedOutput
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("seed: answer: %w", err)
	}
	return &out, nil
}
