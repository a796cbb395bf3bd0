package tests

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"

	"github.com/keyledger/keyledger/gateway/transport"
)

// devCA makes a development CA and server certificate for 127.0.0.1 in dir.
func devCA(t *testing.T, dir string) (transport.DevFiles, *x509.CertPool) {
	t.Helper()
	f, err := transport.DevCertificate(dir, transport.DevHosts("127.0.0.1:0"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(raw) {
		t.Fatal("no CA certificate")
	}
	return f, pool
}

// withTLS serves TLS with cfg; the instance's SDK clients trust roots and
// present clientCert when given.
func withTLS(cfg *tls.Config, roots *x509.CertPool, clientCert *tls.Certificate) option {
	return func(i *instance) {
		i.tls = cfg
		cc := &tls.Config{RootCAs: roots}
		if clientCert != nil {
			cc.Certificates = []tls.Certificate{*clientCert}
		}
		i.client = &http.Client{Transport: &http.Transport{TLSClientConfig: cc}, Timeout: 10 * time.Second}
	}
}

func serverTLS(t *testing.T, f transport.DevFiles, clientCA string) (*tls.Config, *transport.Certificate) {
	t.Helper()
	cert, err := transport.LoadCertificate(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := transport.ServerConfig(cert, clientCA)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, cert
}

// TestTLSWithACustomCA: the SDK, trusting only keyledger's development CA,
// encrypts and decrypts over TLS; a client that does not trust it fails
// the handshake; TLS 1.1 is refused.
func TestTLSWithACustomCA(t *testing.T) {
	f, roots := devCA(t, t.TempDir())
	cfg, _ := serverTLS(t, f, "")
	in := start(t, withTLS(cfg, roots, nil))
	ctx := context.Background()
	k := in.createKey("tls")
	enc, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(k), Plaintext: []byte("over tls")})
	if err != nil {
		t.Fatal(err)
	}
	dec, err := in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	if err != nil {
		t.Fatalf("decrypt: %v", err)
	}
	if string(dec.Plaintext) != "over tls" {
		t.Fatalf("decrypted %q", dec.Plaintext)
	}

	untrusting := newClient(in.endpoint, testCredentials["admin"][0], testCredentials["admin"][1])
	if _, err := untrusting.ListKeys(ctx, &kms.ListKeysInput{}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a client without the CA connected: %v", err)
	}
	addr := strings.TrimPrefix(in.endpoint, "https://")
	if c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Fatal("TLS 1.1 accepted")
	}
}

// TestMutualTLS: with a client CA, a client without a certificate, or with
// one from another CA, is refused; one with a certificate the CA issued
// works.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	f, roots := devCA(t, dir)
	cfg, _ := serverTLS(t, f, f.CA)
	good := clientCertificate(t, f)
	in := start(t, withTLS(cfg, roots, &good))
	ctx := context.Background()
	if _, err := in.kms.ListKeys(ctx, &kms.ListKeysInput{}); err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}

	other, _ := devCA(t, t.TempDir())
	stranger := clientCertificate(t, other)
	for name, opt := range map[string]option{
		"no client certificate":       withTLS(nil, roots, nil),
		"certificate from another CA": withTLS(nil, roots, &stranger),
	} {
		t.Run(name, func(t *testing.T) {
			probe := &instance{endpoint: in.endpoint}
			opt(probe)
			_, err := probe.as("admin").ListKeys(ctx, &kms.ListKeysInput{})
			if err == nil {
				t.Fatal("refused client was served")
			}
			// Refused in the handshake: no HTTP answer at all. With TLS 1.3
			// the client may see the server's alert, or only the closed
			// connection (broken pipe, reset) when it writes first.
			var apiErr smithy.APIError
			if errors.As(err, &apiErr) {
				t.Fatalf("refused client got an HTTP answer: %v", err)
			}
		})
	}
}

// clientCertificate issues a client certificate from the development CA in f.
func clientCertificate(t *testing.T, f transport.DevFiles) tls.Certificate {
	t.Helper()
	caPair, err := tls.LoadX509KeyPair(f.CA, f.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caPair.Certificate[0])
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caPair.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestCertificateReload: replacing the certificate files and reloading
// serves the new certificate to new connections, while a connection opened
// before keeps working.
func TestCertificateReload(t *testing.T) {
	dir := t.TempDir()
	f, oldRoots := devCA(t, dir)
	cfg, cert := serverTLS(t, f, "")
	in := start(t, withTLS(cfg, oldRoots, nil))
	addr := strings.TrimPrefix(in.endpoint, "https://")

	// A keep-alive connection from before the reload.
	before, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: oldRoots})
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	healthz := func() string {
		t.Helper()
		if _, err := before.Write([]byte("GET /healthz HTTP/1.1\r\nHost: " + addr + "\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		before.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(before), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Status
	}
	if s := healthz(); !strings.HasPrefix(s, "200") {
		t.Fatal(s)
	}

	// A renewal from a new CA, written over the files.
	nf, newRoots := devCA(t, filepath.Join(dir, "renewed"))
	for src, dst := range map[string]string{nf.Cert: f.Cert, nf.Key: f.Key} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if swapped, err := cert.Reload(); err != nil || !swapped {
		t.Fatalf("reload: %v %v", swapped, err)
	}
	if swapped, err := cert.Reload(); err != nil || swapped {
		t.Fatalf("second reload of the same files swapped: %v %v", swapped, err)
	}

	if s := healthz(); !strings.HasPrefix(s, "200") {
		t.Fatalf("the connection from before the reload: %s", s)
	}
	if c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: oldRoots}); err == nil {
		c.Close()
		t.Fatal("a new connection still got the old certificate")
	}
	renewed := &instance{endpoint: in.endpoint}
	withTLS(nil, newRoots, nil)(renewed)
	if _, err := renewed.as("admin").ListKeys(context.Background(), &kms.ListKeysInput{}); err != nil {
		t.Fatalf("new connection with the renewed certificate: %v", err)
	}

	// A broken file keeps the current certificate in use.
	if err := os.WriteFile(f.Cert, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Reload(); err == nil {
		t.Fatal("a broken certificate file was accepted")
	}
	if _, err := renewed.as("admin").ListKeys(context.Background(), &kms.ListKeysInput{}); err != nil {
		t.Fatalf("after a failed reload: %v", err)
	}
}

// TestPlainHTTPOnlyOnLoopback: serve refuses plain HTTP on a non-loopback
// address unless --insecure-http is given, and says why.
func TestPlainHTTPOnlyOnLoopback(t *testing.T) {
	code, out := cli(t, "serve", "--data-dir", t.TempDir(), "--listen", "0.0.0.0:0")
	if code != 2 || !strings.Contains(out, "refusing to serve plain HTTP on 0.0.0.0:0") || !strings.Contains(out, "--insecure-http") ||
		!strings.Contains(out, "TLS") {
		t.Fatalf("exit %d: %s", code, out)
	}
	code, out = cli(t, "serve", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--tls-cert", "x.pem")
	if code != 2 || !strings.Contains(out, "--tls-cert and --tls-key go together") {
		t.Fatalf("exit %d: %s", code, out)
	}
}

// TestSelfSignedServe: serve --tls-self-signed writes a CA under the data
// directory, prints how to point AWS_CA_BUNDLE at it, answers /readyz once
// started, and serves the SDK over TLS.
func TestSelfSignedServe(t *testing.T) {
	dir := t.TempDir()
	principalsFile := filepath.Join(t.TempDir(), "principals.json")
	if err := os.WriteFile(principalsFile, []byte(testPrincipals), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	cmd := exec.Command(binary, "serve", "--data-dir", dir, "--listen", addr, "--principals", principalsFile, "--tls-self-signed")
	var out syncBuffer
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	ca := filepath.Join(dir, "tls", "ca.pem")
	probe := &instance{endpoint: "https://" + addr}
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not serving over TLS: %v\n%s", err, out.String())
		}
		raw, rerr := os.ReadFile(ca)
		roots := x509.NewCertPool()
		if rerr != nil || !roots.AppendCertsFromPEM(raw) {
			continue
		}
		withTLS(nil, roots, nil)(probe)
		if _, err = probe.as("admin").ListKeys(context.Background(), &kms.ListKeysInput{}); err == nil {
			break
		}
	}
	abs, _ := filepath.Abs(ca)
	if !strings.Contains(out.String(), "export AWS_CA_BUNDLE="+abs) || !strings.Contains(out.String(), "--ca-bundle "+abs) {
		t.Fatalf("no instructions to trust the CA:\n%s", out.String())
	}
	resp, err := probe.client.Get("https://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/readyz = %d after start", resp.StatusCode)
	}
}

// TestFirstRunBannerAndSingleNATSWarning: the first-run banner exports both
// region variables (the SDKs read AWS_REGION, the AWS CLI v1
// AWS_DEFAULT_REGION), and one external NATS replica is warned about.
func TestFirstRunBannerAndSingleNATSWarning(t *testing.T) {
	natsPort := freePort(t)
	startNATS(t, t.TempDir(), natsPort)
	cmd := exec.Command(binary, "serve", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:"+strconv.Itoa(freePort(t)),
		"--nats-url", "nats://127.0.0.1:"+strconv.Itoa(natsPort))
	var out syncBuffer
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(out.String(), "keyledger serving"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", out.String())
		}
	}
	for _, want := range []string{"export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1", "level=WARN", "sync_interval: always", "--replicas 3"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("start-up output lacks %q:\n%s", want, out.String())
		}
	}
}
