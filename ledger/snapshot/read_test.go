package snapshot_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/ledger/snapshot"
	"github.com/keyledger/keyledger/ledger/writer"
)

// TestReadsWithDirectGets: a snapshot of many chunks (more than one
// direct-get batch's bytes) reads back whole, and List and Load see what
// Put, PutRaw and Thin left, all without a consumer.
func TestReadsWithDirectGets(t *testing.T) {
	dir := t.TempDir()
	srv, err := embedded.Start(embedded.Options{DataDir: filepath.Join(dir, "js"), AuthDir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store, err := snapshot.Open(ctx, nc, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	key := writer.Generate()
	trusted := func(id string) ed25519.PublicKey {
		if id == key.ID() {
			return key.Public()
		}
		return nil
	}
	big := make([]byte, 17<<20) // 136 chunks of 128 KiB: past one batch's 16 MiB
	rand.Read(big)
	for i, body := range [][]byte{[]byte("small"), big} {
		h := snapshot.Header{Index: uint64(i + 1), Seq: uint64(i + 1), Hash: "00000000000000000000000000000000000000000000000000000000000000aa", EventTime: time.Now()}
		if err := store.Put(ctx, h, body, key); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.PutRaw(ctx, "not-a-snapshot", []byte("x")); err != nil {
		t.Fatal(err)
	}
	list, err := store.List(ctx)
	if err != nil || len(list) != 2 || list[0].Pos != 2 || list[1].Pos != 1 {
		t.Fatalf("List: %v %+v", err, list)
	}
	h, body, err := store.Load(ctx, list[0].Name, trusted)
	if err != nil || h.Index != 2 || !bytes.Equal(body, big) {
		t.Fatalf("Load of the big snapshot: %v (index %d, %d bytes)", err, h.Index, len(body))
	}
	if err := store.Thin(ctx, snapshot.Retention{Recent: 1}); err != nil {
		t.Fatal(err)
	}
	if list, err = store.List(ctx); err != nil || len(list) != 1 || list[0].Pos != 2 {
		t.Fatalf("List after Thin: %v %+v", err, list)
	}
	if _, _, err := store.Load(ctx, snapshot.Name(1), trusted); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Fatalf("Load of a thinned snapshot: %v", err)
	}
}
