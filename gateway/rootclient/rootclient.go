// Package rootclient is the client side of package rootapi: SigV4-signed
// requests that submit unseal shares and start or watch a root key
// rotation. A Client is safe for concurrent use; it never logs or returns
// the secret it signs with, nor a share.
package rootclient

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

	"github.com/keyledger/keyledger/gateway/sigv4"
)

const maxResponse = 1 << 20

// Client talks to one deployment.
type Client struct {
	Endpoint    string
	Region      string
	Credentials sigv4.Credentials
	HTTP        *http.Client // default: http.DefaultClient
}

// Progress is where unsealing stands.
type Progress struct {
	Sealed    bool `json:"sealed"`
	Threshold int  `json:"threshold"`
	Submitted int  `json:"progress"`
}

// Unseal submits one share.
func (c *Client) Unseal(ctx context.Context, share string) (Progress, error) {
	body, _ := json.Marshal(map[string]string{"share": share})
	var p Progress
	return p, c.do(ctx, http.MethodPost, "/unseal", body, &p)
}

// UnsealProgress asks where unsealing stands.
func (c *Client) UnsealProgress(ctx context.Context) (Progress, error) {
	var p Progress
	return p, c.do(ctx, http.MethodGet, "/unseal", nil, &p)
}

// Rotate starts a root key rotation; the answer is its status.
func (c *Client) Rotate(ctx context.Context) (map[string]any, error) {
	var st map[string]any
	return st, c.do(ctx, http.MethodPost, "/root/rotate", []byte("{}"), &st)
}

// Rotation returns the rotation's status.
func (c *Client) Rotation(ctx context.Context) (map[string]any, error) {
	var st map[string]any
	return st, c.do(ctx, http.MethodGet, "/root/rotation", nil, &st)
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	if err := c.Credentials.Check(); err != nil {
		return err
	}
	base, err := url.Parse(strings.TrimSuffix(c.Endpoint, "/"))
	if err != nil {
		return fmt.Errorf("rootclient: endpoint: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, method, base.String()+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	req.Header.Set("X-Amz-Date", now.Format(sigv4.AmzDateFormat))
	headers := []sigv4.Header{{Name: "host", Value: req.URL.Host}, {Name: "x-amz-date", Value: req.Header.Get("X-Amz-Date")}}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
		headers = append(headers, sigv4.Header{Name: "content-type", Value: "application/json"})
	}
	req.Header.Set("Authorization", sigv4.Sign(c.Credentials, c.Region, "kms", method, path, headers, body, now))
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Type != "" {
			return fmt.Errorf("%s: %s (HTTP %d)", e.Type, e.Message, resp.StatusCode)
		}
		return fmt.Errorf("HTTP %d from %s", resp.StatusCode, path)
	}
	return json.Unmarshal(raw, out)
}
