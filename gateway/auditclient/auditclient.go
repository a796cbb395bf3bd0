// Package auditclient is the client side of keyledger's audit HTTP API
// (package auditapi): SigV4-signed GETs for signed checkpoints and proofs,
// for tools that watch a deployment from outside, such as the witness.
//
// A Client is safe for concurrent use. It never logs or returns the secret
// it signs with.
package auditclient

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/keyledger/keyledger/gateway/sigv4"
)

// maxResponse bounds what the client reads from a deployment it may not trust.
const maxResponse = 1 << 20

// Client talks to one deployment's audit API.
type Client struct {
	Endpoint    string // e.g. https://kms.example:8443
	Region      string
	Credentials sigv4.Credentials
	HTTP        *http.Client // default: http.DefaultClient
}

// Checkpoint returns the deployment's newest signed checkpoint.
func (c *Client) Checkpoint(ctx context.Context) ([]byte, error) {
	return c.get(ctx, "/audit/checkpoint")
}

// Consistency returns the proof that the tree of newSize events extends
// the tree of oldSize events.
func (c *Client) Consistency(ctx context.Context, oldSize, newSize int64) ([]tlog.Hash, error) {
	body, err := c.get(ctx, "/audit/proof/consistency?new="+strconv.FormatInt(newSize, 10)+"&old="+strconv.FormatInt(oldSize, 10))
	if err != nil {
		return nil, err
	}
	var resp struct {
		Proof []string `json:"proof"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("auditclient: consistency proof: %w", err)
	}
	proof := make([]tlog.Hash, len(resp.Proof))
	for i, s := range resp.Proof {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != tlog.HashSize {
			return nil, fmt.Errorf("auditclient: consistency proof: malformed hash %d", i)
		}
		copy(proof[i][:], b)
	}
	return proof, nil
}

// maxReport bounds a compliance report (HTML with every finding of a large
// deployment is the biggest answer the audit API gives).
const maxReport = 256 << 20

// ComplianceReport returns the deployment's compliance report from its live
// aggregates: format json, csv or html; scope account (the caller's) or
// all (needs keyledger:ReadAllAccounts).
func (c *Client) ComplianceReport(ctx context.Context, format, scope string) ([]byte, error) {
	q := url.Values{"format": {format}, "scope": {scope}}
	return c.getLimited(ctx, "/reports/compliance?"+q.Encode(), maxReport)
}

// get sends a signed GET for pathAndQuery and returns the body of a 200.
func (c *Client) get(ctx context.Context, pathAndQuery string) ([]byte, error) {
	return c.getLimited(ctx, pathAndQuery, maxResponse)
}

func (c *Client) getLimited(ctx context.Context, pathAndQuery string, limit int64) ([]byte, error) {
	if err := c.Credentials.Check(); err != nil {
		return nil, err
	}
	base, err := url.Parse(strings.TrimSuffix(c.Endpoint, "/"))
	if err != nil {
		return nil, fmt.Errorf("auditclient: endpoint: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base.String()+pathAndQuery, nil)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	req.Header.Set("X-Amz-Date", now.Format(sigv4.AmzDateFormat))
	headers := []sigv4.Header{{Name: "host", Value: req.URL.Host}, {Name: "x-amz-date", Value: req.Header.Get("X-Amz-Date")}}
	req.Header.Set("Authorization", sigv4.Sign(c.Credentials, c.Region, "kms", http.MethodGet, pathAndQuery, headers, nil, now))
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("auditclient: answer from %s larger than %d bytes", req.URL.Path, limit)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		if json.Unmarshal(body, &e) == nil && e.Type != "" {
			return nil, fmt.Errorf("auditclient: %s: %s (HTTP %d)", e.Type, e.Message, resp.StatusCode)
		}
		return nil, fmt.Errorf("auditclient: HTTP %d from %s", resp.StatusCode, req.URL.Path)
	}
	return body, nil
}
