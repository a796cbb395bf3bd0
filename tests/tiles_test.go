package tests

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/keyledger/keyledger/ledger/merkle"
)

// proveOverHTTP asks the audit API for an inclusion proof of index in the
// tree of size and checks it against root; it returns the HTTP status.
func proveOverHTTP(t *testing.T, in *instance, index, size int64, root tlog.Hash, raw []byte) int {
	t.Helper()
	status, body := getAudit(t, in, "admin", "/audit/proof/inclusion?index="+strconv.FormatInt(index, 10)+"&size="+strconv.FormatInt(size, 10))
	if status != 200 {
		return status
	}
	var ip struct{ Proof []string }
	if err := json.Unmarshal(body, &ip); err != nil {
		t.Fatal(err)
	}
	if err := tlog.CheckRecord(decodeHashes(t, ip.Proof), size, root, index, tlog.RecordHash(raw)); err != nil {
		t.Fatalf("inclusion proof of %d in %d does not verify: %v", index, size, err)
	}
	return status
}

// TestProofsFromStoredTiles: the Merkle tree's hashes live in tiles in
// JetStream. A restart restores the tree from the snapshot's frontier and
// the stored tiles (reading no event); proofs for old indexes come from
// the stored tiles and verify against a signed checkpoint. Tiles missing
// or tampered with at start make it rebuild the tree from the events,
// writing them again; a tile tampered with while running is rebuilt from
// the events under it when a proof needs it — a right proof or none,
// never a wrong one.
func TestProofsFromStoredTiles(t *testing.T) {
	port := freePort(t)
	startNATS(t, t.TempDir(), port)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	in := start(t, withNATS(url))
	ctx := context.Background()
	k := in.createKey("tiles")
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ { // 800 events: three full tiles, the middle one not read at start
				if _, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x")}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	signed, err := in.node.Checkpointer.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cp, _ := merkle.Open(signed, in.vkey)
	if cp.Size < 3*256 {
		t.Fatalf("only %d events", cp.Size)
	}
	recs := in.records()
	in.logs.Reset()
	in.restart()
	if !strings.Contains(in.logs.String(), "merkle_from=frontier") {
		t.Fatalf("the restart did not restore the tree from the snapshot's frontier:\n%s", in.logs.String())
	}
	waitTilesStored(t, in)
	for _, idx := range []int64{3, 300, cp.Size - 1} {
		if status := proveOverHTTP(t, in, idx, cp.Size, cp.Root, recs[idx].Raw); status != 200 {
			t.Fatalf("inclusion of %d after restart: %d", idx, status)
		}
	}
	status, body := getAudit(t, in, "admin", "/audit/proof/consistency?old=300&new="+strconv.FormatInt(cp.Size, 10))
	var cpf struct {
		OldRoot string
		Proof   []string
	}
	if status != 200 || json.Unmarshal(body, &cpf) != nil {
		t.Fatalf("consistency: %d %s", status, body)
	}
	oldRoot := decodeHashes(t, []string{cpf.OldRoot})[0]
	if err := tlog.CheckTree(decodeHashes(t, cpf.Proof), cp.Size, cp.Root, 300, oldRoot); err != nil {
		t.Fatalf("consistency proof after restart: %v", err)
	}

	// Tamper with tile 0/1 (events 256..511) in the bucket: restart so no
	// cached copy hides it, then ask for a proof that needs it.
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(ctx, "KEYLEDGER_TILES")
	if err != nil {
		t.Fatal(err)
	}
	key := tlog.Tile{H: 8, L: 0, N: 1, W: 256}.Path()
	e, err := kv.Get(ctx, key)
	if err != nil {
		t.Fatalf("tile %s not stored: %v", key, err)
	}
	tampered := append([]byte(nil), e.Value()...)
	tampered[100] ^= 0x40
	in.down()
	if _, err := kv.Put(ctx, key, tampered); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, tlog.Tile{H: 8, L: 0, N: 0, W: 256}.Path()); err != nil {
		t.Fatal(err)
	}
	in.logs.Reset()
	in.up()
	if !strings.Contains(in.logs.String(), "merkle tree not restored from the snapshot's frontier") ||
		!strings.Contains(in.logs.String(), "merkle_from=events") {
		t.Fatalf("a start over a lost tile did not rebuild the tree from the events:\n%s", in.logs.String())
	}
	// The restart's rebuild writes both again.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(in.logs.String(), "merkle tiles that were missing or did not match the ledger were written again") {
		if time.Now().After(deadline) {
			t.Fatal("the tampered tile was not written again")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, idx := range []int64{3, 300} {
		if status := proveOverHTTP(t, in, idx, cp.Size, cp.Root, recs[idx].Raw); status != 200 {
			t.Fatalf("inclusion of %d after the tiles were rebuilt: %d", idx, status)
		}
	}
	// Tampered while running, with no cached copy: the tile is rebuilt
	// from its events, checked, used and stored again.
	in.restart()
	waitTilesStored(t, in)
	if _, err := kv.Put(ctx, key, tampered); err != nil {
		t.Fatal(err)
	}
	if status := proveOverHTTP(t, in, 300, cp.Size, cp.Root, recs[300].Raw); status != 200 {
		t.Fatalf("a proof over a tampered tile answered %d", status)
	}
	if e, err := kv.Get(ctx, key); err != nil || string(e.Value()) == string(tampered) {
		t.Fatalf("the tampered tile was not written again: %v", err)
	}
	if status := proveOverHTTP(t, in, 3, cp.Size, cp.Root, recs[3].Raw); status != 200 {
		t.Fatalf("a proof over an intact tile answered %d", status)
	}
}

// waitTilesStored waits until the instance's tree holds no completed tile
// only in memory, so proofs read tiles from the bucket.
func waitTilesStored(t *testing.T, in *instance) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for in.node.Checkpointer.Tree().Pending() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("tiles not stored")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
