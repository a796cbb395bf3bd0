package transport

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"
)

// Certificate serves a PEM certificate and key pair from files, reloading
// them on Reload (SIGHUP) or when Watch sees the files change. Handshakes
// take the current pair; connections already open keep theirs.
type Certificate struct {
	certFile, keyFile string
	cur               atomic.Pointer[loaded]
}

type loaded struct {
	cert            *tls.Certificate
	certPEM, keyPEM []byte // to tell a change from a rewrite with the same content
}

// LoadCertificate reads the pair once; a bad pair is an error at start.
func LoadCertificate(certFile, keyFile string) (*Certificate, error) {
	c := &Certificate{certFile: certFile, keyFile: keyFile}
	if _, err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload reads the files again and, if they hold a valid pair that differs
// from the current one, swaps it in. It reports whether it swapped. On an
// error the current pair stays in use.
func (c *Certificate) Reload() (bool, error) {
	certPEM, err := os.ReadFile(c.certFile)
	if err != nil {
		return false, fmt.Errorf("tls certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(c.keyFile)
	if err != nil {
		return false, fmt.Errorf("tls key: %w", err)
	}
	if old := c.cur.Load(); old != nil && bytes.Equal(old.certPEM, certPEM) && bytes.Equal(old.keyPEM, keyPEM) {
		return false, nil
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// The error names no key bytes (crypto/tls reports only the kind of failure).
		return false, fmt.Errorf("tls certificate and key %s, %s: %w", c.certFile, c.keyFile, err)
	}
	if pair.Leaf == nil {
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return false, err
		}
	}
	c.cur.Store(&loaded{cert: &pair, certPEM: certPEM, keyPEM: keyPEM})
	return true, nil
}

// Leaf is the certificate being served.
func (c *Certificate) Leaf() *x509.Certificate { return c.cur.Load().cert.Leaf }

// GetCertificate is tls.Config.GetCertificate.
func (c *Certificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.cur.Load().cert, nil
}

// Watch reloads the pair every interval until stop is closed, so a renewed
// certificate (cert-manager, certbot) is served without a restart. Errors
// are logged and the current pair kept: a half-written renewal is retried.
func (c *Certificate) Watch(stop <-chan struct{}, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			c.reloadAndLog(log)
		}
	}
}

// ReloadAndLog is Reload for a SIGHUP handler: the outcome goes to log.
func (c *Certificate) ReloadAndLog(log *slog.Logger) { c.reloadAndLog(log) }

func (c *Certificate) reloadAndLog(log *slog.Logger) {
	swapped, err := c.Reload()
	switch {
	case err != nil:
		log.Error("TLS certificate not reloaded; still serving the previous one", "error", err)
	case swapped:
		leaf := c.Leaf()
		log.Info("TLS certificate reloaded", "subject", leaf.Subject.String(), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
}

// ServerConfig is the gateway's TLS configuration: TLS 1.2 or later with
// Go's default cipher suites and curves, the certificate from c, and, when
// clientCAFile is set, a verified client certificate issued by one of its
// CAs on every connection (mutual TLS).
func ServerConfig(c *Certificate, clientCAFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.GetCertificate}
	if clientCAFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(clientCAFile)
	if err != nil {
		return nil, fmt.Errorf("tls client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("tls client CA: " + clientCAFile + " holds no PEM certificate")
	}
	cfg.ClientCAs = pool
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	return cfg, nil
}
