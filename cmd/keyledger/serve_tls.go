package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"time"

	"github.com/keyledger/keyledger/gateway/transport"
)

// certWatchInterval is how often the certificate files are checked for a
// renewal (SIGHUP reloads at once).
const certWatchInterval = 5 * time.Second

type tlsFlags struct {
	cert, key, clientCA string
	selfSigned          bool
	insecureHTTP        bool
}

func (t *tlsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&t.cert, "tls-cert", "", "PEM certificate (chain) to serve TLS with; reloaded on SIGHUP and when the file changes")
	fs.StringVar(&t.key, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&t.clientCA, "tls-client-ca", "", "PEM CA certificates: require every client to present a certificate they issued (mutual TLS)")
	fs.BoolVar(&t.selfSigned, "tls-self-signed", false, "development: serve TLS with a certificate from a CA kept under <data-dir>/tls (created if absent)")
	fs.BoolVar(&t.insecureHTTP, "insecure-http", false, "allow plain HTTP on a non-loopback --listen address (plaintexts and data keys travel unencrypted)")
}

// check validates the flags before anything starts: TLS, or plain HTTP
// only where it is safe (or explicitly accepted).
func (t *tlsFlags) check(listen string) error {
	if (t.cert == "") != (t.key == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if t.selfSigned && t.cert != "" {
		return errors.New("--tls-self-signed and --tls-cert exclude each other")
	}
	if t.clientCA != "" && t.cert == "" && !t.selfSigned {
		return errors.New("--tls-client-ca needs TLS (--tls-cert/--tls-key or --tls-self-signed)")
	}
	if t.cert != "" || t.selfSigned {
		return nil
	}
	return transport.CheckPlainHTTP(listen, t.insecureHTTP)
}

// checkNATS applies the rule of check to --nats-listen: audit subscribers
// read every ledger event there, so it needs TLS (the same certificate as
// the API) anywhere but on loopback, unless --insecure-nats accepts the
// risk.
func (t *tlsFlags) checkNATS(natsListen string, insecure bool) error {
	if natsListen == "" || t.cert != "" || t.selfSigned {
		return nil
	}
	if err := transport.CheckPlainHTTP(natsListen, insecure); err == nil {
		return nil
	} else if !errors.As(err, new(*transport.ErrPlainHTTP)) {
		return fmt.Errorf("--nats-listen: %w", err)
	}
	return fmt.Errorf("refusing to serve NATS without TLS on %s: audit subscribers read every ledger event there, so anything "+
		"but a loopback address needs TLS (--tls-cert/--tls-key, or --tls-self-signed for development; --nats-listen serves the "+
		"same certificate as the API); pass --insecure-nats to accept the risk", natsListen)
}

// config builds the TLS configuration (nil for plain HTTP). With
// --tls-self-signed it first makes sure the development CA and a
// certificate for the API's and NATS's hosts exist and tells the user how
// to trust them.
func (t *tlsFlags) config(listen, natsListen, dataDir string, out io.Writer) (*tls.Config, *transport.Certificate, error) {
	certFile, keyFile := t.cert, t.key
	if t.selfSigned {
		dir := filepath.Join(dataDir, "tls")
		hosts := transport.DevHosts(listen)
		if natsListen != "" {
			for _, h := range transport.DevHosts(natsListen) {
				if !slices.Contains(hosts, h) {
					hosts = append(hosts, h)
				}
			}
		}
		f, err := transport.DevCertificate(dir, hosts, time.Now())
		if err != nil {
			return nil, nil, fmt.Errorf("development certificate: %w", err)
		}
		certFile, keyFile = f.Cert, f.Key
		ca, _ := filepath.Abs(f.CA)
		_, port, _ := net.SplitHostPort(listen)
		endpoint := net.JoinHostPort(transport.DevHosts(listen)[0], port)
		fmt.Fprintf(out, `
================================================================================
keyledger serves TLS with a DEVELOPMENT certificate issued by its own CA
(%s). Point AWS tools at that CA:

  export AWS_CA_BUNDLE=%s
  aws kms list-keys --endpoint-url https://%s --ca-bundle %s

SDKs read AWS_CA_BUNDLE too (or load the file into their HTTP client's root
CAs). Production deployments pass --tls-cert and --tls-key.
================================================================================

`, dir, ca, endpoint, ca)
	}
	if certFile == "" {
		return nil, nil, nil
	}
	cert, err := transport.LoadCertificate(certFile, keyFile)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := transport.ServerConfig(cert, t.clientCA)
	if err != nil {
		return nil, nil, err
	}
	return cfg, cert, nil
}
