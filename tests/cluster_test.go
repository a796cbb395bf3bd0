package tests

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/keyledger/keyledger/ledger/chain"
)

// startCluster runs a three-node JetStream cluster on loopback and returns
// its servers and a client URL listing all three.
func startCluster(t *testing.T) ([]*server.Server, string) {
	t.Helper()
	const n = 3
	clientPorts, routePorts := make([]int, n), make([]int, n)
	for i := range clientPorts {
		clientPorts[i], routePorts[i] = freePort(t), freePort(t)
	}
	var routes []*url.URL
	for _, p := range routePorts {
		u, _ := url.Parse(fmt.Sprintf("nats://127.0.0.1:%d", p))
		routes = append(routes, u)
	}
	var servers []*server.Server
	var urls []string
	for i := 0; i < n; i++ {
		opts := &server.Options{
			ServerName: fmt.Sprintf("kl-%d", i), Host: "127.0.0.1", Port: clientPorts[i],
			JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
			Cluster: server.ClusterOpts{Name: "keyledger-test", Host: "127.0.0.1", Port: routePorts[i]},
			Routes:  routes,
		}
		ns, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		go ns.Start()
		t.Cleanup(ns.Shutdown)
		servers = append(servers, ns)
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", clientPorts[i]))
	}
	for _, ns := range servers {
		if !ns.ReadyForConnections(20 * time.Second) {
			t.Fatal("cluster node not ready")
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ready := 0
		for _, ns := range servers {
			if ns.JetStreamIsCurrent() && ns.JetStreamEnabled() {
				ready++
			}
		}
		if ready == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("JetStream cluster did not form")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return servers, strings.Join(urls, ",")
}

// TestThreeNodeCluster runs keyledger on a real three-node JetStream
// cluster with R3 streams, and keeps serving when a node dies.
func TestThreeNodeCluster(t *testing.T) {
	t.Parallel() // its own servers and directories: runs beside the others
	servers, urls := startCluster(t)
	in := start(t, withNATS(urls), withReplicas(3))
	ctx := context.Background()
	var k string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, err := in.kms.CreateKey(ctx, &kms.CreateKeyInput{})
		if err == nil {
			k = *out.KeyMetadata.KeyId
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CreateKey on the cluster: %v", err)
		}
	}
	enc, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("replicated")})
	if err != nil {
		t.Fatal(err)
	}
	// One node dies; the quorum carries on.
	servers[0].Shutdown()
	servers[0].WaitForShutdown()
	var dec *kms.DecryptOutput
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if _, err = in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("after a node died")}); err == nil {
			dec, err = in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
		}
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || string(dec.Plaintext) != "replicated" {
		t.Fatalf("after losing a node: %v", err)
	}
	if _, err := chain.Verify(ctx, in.node.Ledger); err != nil {
		t.Fatal(err)
	}
	// A restarted instance rebuilds everything from the surviving quorum.
	in.restart()
	if _, err := in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob}); err != nil {
		t.Fatalf("after restart on two of three nodes: %v", err)
	}
}
