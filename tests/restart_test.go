package tests

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/keyledger/keyledger/gateway/node"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/projections/resume"
)

// encrypts makes n Encrypt events over 8 connections.
func encrypts(t *testing.T, in *instance, key string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				if _, err := in.kms.Encrypt(context.Background(), &kms.EncryptInput{KeyId: &key, Plaintext: []byte("x")}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// referenceTree is the Merkle tree of the ledger's events built from the
// first event in memory: what a full replay gives.
func referenceTree(t *testing.T, in *instance) (*merkle.MemTree, [][]byte) {
	t.Helper()
	ref := &merkle.MemTree{}
	var raws [][]byte
	for _, r := range in.records() {
		if err := ref.Append(r.Raw); err != nil {
			t.Fatal(err)
		}
		raws = append(raws, r.Raw)
	}
	return ref, raws
}

// checkTreeOverHTTP compares the instance's tree with the reference: roots
// at several sizes, and inclusion and consistency proofs for old indexes
// served by the audit API, verified against the reference's roots.
func checkTreeOverHTTP(t *testing.T, in *instance, ref *merkle.MemTree, raws [][]byte) {
	t.Helper()
	n := ref.Size()
	if got := in.node.Checkpointer.Tree().Size(); got != n {
		t.Fatalf("tree of %d leaves, the ledger has %d events", got, n)
	}
	for _, size := range []int64{1, 255, 256, 257, 511, 512, 600, n} {
		if size > n {
			continue
		}
		want, _ := ref.Root(size)
		if got, err := in.node.Checkpointer.Tree().Root(size); err != nil || got != want {
			t.Fatalf("root at %d differs from a full replay's: %v", size, err)
		}
	}
	root, _ := ref.Root(n)
	for _, idx := range []int64{0, 5, 255, 256, 300, 511, n / 2, n - 1} {
		if status := proveOverHTTP(t, in, idx, n, root, raws[idx]); status != 200 {
			t.Fatalf("inclusion of %d in %d: HTTP %d", idx, n, status)
		}
	}
	for _, old := range []int64{1, 256, 300, 513} {
		status, body := getAudit(t, in, "admin", fmt.Sprintf("/audit/proof/consistency?old=%d&new=%d", old, n))
		var cpf struct {
			OldRoot string
			Proof   []string
		}
		if status != 200 || json.Unmarshal(body, &cpf) != nil {
			t.Fatalf("consistency %d..%d: %d %s", old, n, status, body)
		}
		oldRoot, _ := ref.Root(old)
		if decodeHashes(t, []string{cpf.OldRoot})[0] != oldRoot {
			t.Fatalf("consistency %d..%d: old root differs from a full replay's", old, n)
		}
		if err := tlog.CheckTree(decodeHashes(t, cpf.Proof), n, root, old, oldRoot); err != nil {
			t.Fatalf("consistency %d..%d: %v", old, n, err)
		}
	}
}

// TestRestartRestoresTreeFromFrontier: a restart restores the Merkle tree
// from the snapshot's edge and the stored tiles, folds the tail, and has
// the tree a full replay builds — roots, and inclusion and consistency
// proofs for old indexes over the audit API. A snapshot that could not
// store its tiles (cancelled) is not taken. With the tile bucket deleted,
// the start rebuilds the tree from the events (logged) and writes the
// tiles again.
func TestRestartRestoresTreeFromFrontier(t *testing.T) {
	port := freePort(t)
	startNATS(t, t.TempDir(), port)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	in := start(t, withNATS(url), withSnapshots(node.Snapshots{NotAtShutdown: true}))
	ctx := context.Background()
	key := in.createKey("restart")
	encrypts(t, in, key, 700)
	if err := in.node.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	encrypts(t, in, key, 300) // the tail after the snapshot
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := in.node.Snapshot(cancelled); err == nil {
		t.Fatal("a snapshot was taken although its tiles could not be stored")
	}

	in.logs.Reset()
	in.restart()
	logs := in.logs.String()
	if !strings.Contains(logs, "merkle_from=frontier") || !strings.Contains(logs, "tail_folded=") {
		t.Fatalf("the restart did not restore the tree from the snapshot's frontier:\n%s", logs)
	}
	ref, raws := referenceTree(t, in)
	checkTreeOverHTTP(t, in, ref, raws)

	// The tile bucket deleted (an operator's mistake): rebuilt from the
	// events, logged, and stored again.
	in.down()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if err := js.DeleteKeyValue(ctx, "KEYLEDGER_TILES"); err != nil {
		t.Fatal(err)
	}
	in.logs.Reset()
	in.up()
	logs = in.logs.String()
	if !strings.Contains(logs, "merkle tree not restored from the snapshot's frontier") || !strings.Contains(logs, "merkle_from=events") {
		t.Fatalf("a start without tiles did not rebuild the tree from the events:\n%s", logs)
	}
	waitTilesStored(t, in)
	ref, raws = referenceTree(t, in)
	checkTreeOverHTTP(t, in, ref, raws)
	kv, err := js.KeyValue(ctx, "KEYLEDGER_TILES")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctx, tlog.Tile{H: 8, L: 0, N: 2, W: 256}.Path()); err != nil {
		t.Fatalf("tiles not written again: %v", err)
	}
}

// TestKill9WhileStoringTilesRestartsFromFrontier kills a real serve with
// SIGKILL under load, while tiles complete and are stored, after a clean
// stop left a snapshot with a frontier. The next start restores the tree
// from that frontier, folds the rest, and must agree with the signed
// checkpoints serve stored every second (else it refuses to start); audit
// verify then passes on the stopped directory.
func TestKill9WhileStoringTilesRestartsFromFrontier(t *testing.T) {
	t.Parallel() // its own servers and directories: runs beside the others
	dataDir := t.TempDir()
	port := freePort(t)
	endpoint := "http://127.0.0.1:" + strconv.Itoa(port)
	admin := testCredentials["admin"]
	c := newClient(endpoint, admin[0], admin[1])
	ctx := context.Background()

	cmd, _ := serveLogged(t, dataDir, port)
	created, err := c.CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	// load encrypts on 16 connections until the server stops answering
	// or, once at least min were answered, until stop is closed.
	var answered atomic.Int64
	load := func(min int64, stop <-chan struct{}) {
		var wg sync.WaitGroup
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						if answered.Load() >= min {
							return
						}
					default:
					}
					if _, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: created.KeyMetadata.KeyId, Plaintext: []byte("x")}); err != nil {
						return
					}
					answered.Add(1)
				}
			}()
		}
		wg.Wait()
	}
	stopped := make(chan struct{})
	close(stopped)
	load(300, stopped)
	cmd.Process.Signal(syscall.SIGTERM) // snapshots the final state
	cmd.Wait()

	cmd, _ = serveLogged(t, dataDir, port)
	answered.Store(0)
	done := make(chan struct{})
	go func() { defer close(done); load(0, nil) }() // until the kill
	// Kill once a checkpoint (every second) covers part of this load and
	// enough of it was answered.
	began := time.Now()
	for answered.Load() < 300 || time.Since(began) < 1500*time.Millisecond {
		if time.Since(began) > time.Minute {
			t.Fatalf("only %d encrypts in a minute", answered.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	<-done

	cmd, stderr := serveLogged(t, dataDir, port)
	if !strings.Contains(stderr.String(), "merkle_from=frontier") {
		t.Fatalf("the start after kill -9 did not restore the tree from the snapshot's frontier:\n%s", stderr.String())
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if code, out := cli(t, "audit", "verify", "--data-dir", dataDir); code != 0 {
		t.Fatalf("audit verify after kill -9: exit %d\n%s", code, out)
	}
}

// serveLogged starts `keyledger serve` on dataDir logging at info, and
// waits until it answers; its log is returned.
func serveLogged(t *testing.T, dataDir string, port int) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	principalsFile := filepath.Join(t.TempDir(), "principals.json")
	if err := os.WriteFile(principalsFile, []byte(testPrincipals), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "serve", "--listen", "127.0.0.1:"+strconv.Itoa(port), "--principals", principalsFile)
	cmd.Env = append(os.Environ(), "KEYLEDGER_DATA_DIR="+dataDir, "KEYLEDGER_LOG_LEVEL=info")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	admin := testCredentials["admin"]
	c := newClient("http://127.0.0.1:"+strconv.Itoa(port), admin[0], admin[1])
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := c.ListKeys(context.Background(), &kms.ListKeysInput{}); err == nil {
			return cmd, stderr
		}
		if time.Now().After(deadline) {
			t.Fatalf("keyledger serve did not come up:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestOldSnapshotIsReplacedAtStart: a snapshot without the Merkle edge (as
// builds before the tiled restore wrote) makes start-up rehash the events
// under it; the instance then takes a new snapshot at once, even with no
// new event, so the next start restores the tree from the frontier instead
// of rehashing again on every restart of an idle deployment.
func TestOldSnapshotIsReplacedAtStart(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	someTraffic(t, in, "old")
	in.down() // a clean stop snapshots the final state
	in.up()
	store, err := in.backend.OpenSnapshots(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	list, err := store.List(ctx)
	if err != nil || len(list) == 0 {
		t.Fatalf("snapshots: %v %v", list, err)
	}
	h, body, err := store.Load(ctx, list[0].Name, func(string) ed25519.PublicKey { return in.writer.Public() })
	if err != nil {
		t.Fatal(err)
	}
	im, err := resume.Decode(body)
	if err != nil || len(im.Merkle.Edge) == 0 {
		t.Fatalf("the snapshot has no edge to remove: %v", err)
	}
	im.Merkle.Edge = nil // as an older build wrote it
	old, err := im.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Put(ctx, h, old, in.writer); err != nil {
		t.Fatal(err)
	}
	in.down() // no new event: a clean stop takes no snapshot
	in.logs.Reset()
	in.up()
	if logs := in.logs.String(); !strings.Contains(logs, "merkle_from=events") {
		t.Fatalf("the edge-less snapshot was not rehashed:\n%s", logs)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(in.logs.String(), "snapshot taken") {
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot taken after rebuilding the tree:\n%s", in.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	in.down()
	in.logs.Reset()
	in.up()
	if logs := in.logs.String(); !strings.Contains(logs, "merkle_from=frontier") {
		t.Fatalf("the next start still rehashed the events:\n%s", logs)
	}
}
