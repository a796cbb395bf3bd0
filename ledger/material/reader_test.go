package material

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/crypto/secret"
	"github.com/keyledger/keyledger/ledger/embedded"
)

// A Reader beside a live Store reads what the store holds as it changes
// (a slot freed and reused for another material), and creates nothing:
// with the keys in a slot file, no keys bucket appears.
func TestReaderBesideALiveStore(t *testing.T) {
	srv, err := embedded.Start(embedded.Options{DataDir: filepath.Join(t.TempDir(), "jetstream"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx := context.Background()
	shredDir := t.TempDir()
	if _, err := OpenReader(ctx, nc, Config{ShredDir: shredDir}); err == nil {
		t.Fatal("OpenReader before the store exists succeeded")
	}
	s, err := Open(ctx, nc, Config{ShredDir: shredDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	root := rootkey.Generate()
	w1 := root.Wrap(secret.Random(32), "m1")
	if err := s.Put(ctx, "m1", w1); err != nil {
		t.Fatal(err)
	}
	r, err := OpenReader(ctx, nc, Config{ShredDir: shredDir})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, err := r.Get(ctx, "m1"); err != nil || !bytes.Equal(got, w1) {
		t.Fatalf("Get(m1) = %v", err)
	}
	// m1's slot is freed and taken by m2 while the reader's index names it.
	if err := s.Destroy(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	w2 := root.Wrap(secret.Random(32), "m2")
	if err := s.Put(ctx, "m2", w2); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(ctx, "m1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(destroyed m1) = %v, want ErrNotFound", err)
	}
	if got, err := r.Get(ctx, "m2"); err != nil || !bytes.Equal(got, w2) {
		t.Fatalf("Get(m2) = %v", err)
	}
	js, _ := jetstream.New(nc)
	if _, err := js.Stream(ctx, "KV_keyledger-material-keys"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("a keys bucket exists: %v", err)
	}
}
