// Package writerclient is the client side of package writerapi: a
// SigV4-signed request that registers an instance's writer public key
// through a registered instance, one that revokes a writer, and one that
// lists the registered and revoked writers. A Client is safe for concurrent use; it never logs or returns
// the secret it signs with.
package writerclient

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

// Client talks to one instance of a deployment.
type Client struct {
	Endpoint    string
	Region      string
	Credentials sigv4.Credentials
	HTTP        *http.Client // default: http.DefaultClient
}

// Registration is what registering a writer answered.
type Registration struct {
	WriterID     string `json:"writerId"`
	RegisteredBy string `json:"registeredBy"`
	Already      bool   `json:"already"`
}

// Register registers a writer public key (base64 Ed25519).
func (c *Client) Register(ctx context.Context, publicKey string) (Registration, error) {
	body, _ := json.Marshal(map[string]string{"publicKey": publicKey})
	var r Registration
	return r, c.do(ctx, http.MethodPost, "/writers", body, &r)
}

// Revocation is what revoking a writer answered.
type Revocation struct {
	WriterID  string `json:"writerId"`
	RevokedBy string `json:"revokedBy"`
	Already   bool   `json:"already"`
}

// Revoke revokes a registered writer, named by its ID or (if id is empty)
// its public key, for the operator's reason (optional).
func (c *Client) Revoke(ctx context.Context, id, publicKey, reason string) (Revocation, error) {
	body, _ := json.Marshal(struct {
		WriterID  string `json:"writerId,omitempty"`
		PublicKey string `json:"publicKey,omitempty"`
		Reason    string `json:"reason,omitempty"`
	}{id, publicKey, reason})
	var r Revocation
	return r, c.do(ctx, http.MethodPost, "/writers/revoke", body, &r)
}

// Revoked is a revoked writer: its key, the writer that revoked it, and
// where the revocation is in the ledger.
type Revoked struct {
	PublicKey string `json:"publicKey"`
	By        string `json:"by"`
	Seq       uint64 `json:"seq"`
	Chain     string `json:"chain"`
	Index     uint64 `json:"index"`
	Pos       uint64 `json:"pos"`
}

// List lists the registered writers (ID → public key) and the revoked
// ones.
func (c *Client) List(ctx context.Context) (writers map[string]string, revoked map[string]Revoked, err error) {
	var out struct {
		Writers map[string]string  `json:"writers"`
		Revoked map[string]Revoked `json:"revoked"`
	}
	err = c.do(ctx, http.MethodGet, "/writers", nil, &out)
	return out.Writers, out.Revoked, err
}

// Writers lists the registered (not revoked) writers: ID → public key.
func (c *Client) Writers(ctx context.Context) (map[string]string, error) {
	var out struct {
		Writers map[string]string `json:"writers"`
	}
	return out.Writers, c.do(ctx, http.MethodGet, "/writers", nil, &out)
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	base, err := url.Parse(strings.TrimSuffix(c.Endpoint, "/"))
	if err != nil {
		return fmt.Errorf("writerclient: endpoint: %w", err)
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
