package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/keyledger/keyledger/crypto/durable"
)

// DevFiles are where DevCertificate keeps a development CA and the server
// certificate it issued. CA is what clients trust (AWS_CA_BUNDLE).
type DevFiles struct {
	CA, CAKey, Cert, Key string
}

// DevFilesIn names the files under dir.
func DevFilesIn(dir string) DevFiles {
	return DevFiles{
		CA: filepath.Join(dir, "ca.pem"), CAKey: filepath.Join(dir, "ca-key.pem"),
		Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem"),
	}
}

// DevCertificate makes sure dir holds a development CA and a server
// certificate from it valid for hosts (DNS names or IP addresses), creating
// what is missing, or reissuing the server certificate when it does not
// cover hosts or expires within a week. The CA is kept, so clients trust it
// once. Keys are ECDSA P-256, written mode 0600. Not for production: the CA
// key sits beside the service.
func DevCertificate(dir string, hosts []string, now time.Time) (DevFiles, error) {
	f := DevFilesIn(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return f, err
	}
	ca, caKey, err := loadCA(f)
	if errors.Is(err, os.ErrNotExist) {
		ca, caKey, err = newCA(f, now)
	}
	if err != nil {
		return f, err
	}
	if leaf, err := readCert(f.Cert); err == nil && covers(leaf, hosts) && leaf.NotAfter.After(now.Add(7*24*time.Hour)) &&
		leaf.CheckSignatureFrom(ca) == nil {
		if _, err := os.Stat(f.Key); err == nil {
			return f, nil
		}
	}
	return f, issue(f, ca, caKey, hosts, now)
}

func newCA(f DevFiles, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "keyledger development CA", Organization: []string{"keyledger"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(5, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	if err := writePEM(f.CAKey, "PRIVATE KEY", pkcs8(key), 0o600); err != nil {
		return nil, nil, err
	}
	if err := writePEM(f.CA, "CERTIFICATE", der, 0o644); err != nil {
		return nil, nil, err
	}
	ca, err := x509.ParseCertificate(der)
	return ca, key, err
}

func issue(f DevFiles, ca *x509.Certificate, caKey *ecdsa.PrivateKey, hosts []string, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: hosts[0], Organization: []string{"keyledger development"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(0, 0, 397),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	// Key first: a reader that sees the new certificate finds its key.
	if err := writePEM(f.Key, "PRIVATE KEY", pkcs8(key), 0o600); err != nil {
		return err
	}
	return writePEM(f.Cert, "CERTIFICATE", der, 0o644)
}

func loadCA(f DevFiles) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	ca, err := readCert(f.CA)
	if err != nil {
		return nil, nil, err
	}
	raw, err := os.ReadFile(f.CAKey)
	if err != nil {
		return nil, nil, err
	}
	b, _ := pem.Decode(raw)
	if b == nil {
		return nil, nil, fmt.Errorf("%s: no PEM block", f.CAKey)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", f.CAKey, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("%s: not an ECDSA key", f.CAKey)
	}
	return ca, key, nil
}

func readCert(path string) (*x509.Certificate, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, _ := pem.Decode(raw)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return x509.ParseCertificate(b.Bytes)
}

func covers(c *x509.Certificate, hosts []string) bool {
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
				return false
			}
		} else if !slices.Contains(c.DNSNames, h) {
			return false
		}
	}
	return true
}

func pkcs8(k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(err) // a P-256 key always marshals
	}
	return der
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n
}

// writePEM replaces path atomically (temp file, then rename), so a
// certificate watcher never reads half a file.
func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	data := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	defer clear(data) // a private key, for the key files
	return durable.WriteFile(path, data, mode)
}

// DevHosts are the names a development certificate for listen address addr
// should cover: the listen host (or this machine's name when it listens on
// every interface), localhost, 127.0.0.1 and ::1.
func DevHosts(addr string) []string {
	host, _, _ := net.SplitHostPort(addr)
	var hosts []string
	switch host {
	case "", "0.0.0.0", "::":
		if h, err := os.Hostname(); err == nil && h != "" {
			hosts = append(hosts, h)
		}
	default:
		hosts = append(hosts, host)
	}
	for _, h := range []string{"localhost", "127.0.0.1", "::1"} {
		if !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return hosts
}
