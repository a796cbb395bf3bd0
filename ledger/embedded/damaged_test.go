package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/internal/blockfile"
)

// fill stores n messages of 400 bytes in an uncompressed stream name and
// stops the server.
func fill(t *testing.T, dir, name string, n int) {
	t.Helper()
	srv, err := Start(Options{DataDir: dir, NoSync: true, AuditStreams: []string{"KEYLEDGER"}})
	if err != nil {
		t.Fatal(err)
	}
	nc, _ := srv.Connect("fill")
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{name + ".>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := js.Publish(ctx, name+".x", bytes.Repeat([]byte{byte('a' + i%26)}, 400)); err != nil {
			t.Fatal(err)
		}
	}
	nc.Close()
	srv.Shutdown()
}

func flipBlock(t *testing.T, dir, name string) string {
	t.Helper()
	blk := filepath.Join(blockfile.MsgsDir(dir, name), "1.blk")
	data, err := os.ReadFile(blk)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(data)/2 - 8; i < len(data)/2+8; i++ {
		data[i] ^= 0xff
	}
	if err := os.WriteFile(blk, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return blk
}

// TestDamagedLedgerBlockNotCut: Start refuses an uncompressed ledger block
// with intact records after a bad one, before nats-server could cut it,
// and changes nothing.
func TestDamagedLedgerBlockNotCut(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "js")
	fill(t, dir, "KEYLEDGER", 200)
	blk := flipBlock(t, dir, "KEYLEDGER")
	before, _ := os.ReadFile(blk)
	_, err := Start(Options{DataDir: dir, AuditStreams: []string{"KEYLEDGER"}})
	var ue *UnrecoveredError
	if !errors.As(err, &ue) || len(ue.Streams) != 1 || !strings.Contains(ue.Streams[0].Cause, "would cut the block") ||
		ue.Streams[0].Salvage == nil || len(ue.Streams[0].Salvage.Lost) != 1 {
		t.Fatalf("start on a damaged ledger block: %v", err)
	}
	if after, _ := os.ReadFile(blk); !bytes.Equal(after, before) {
		t.Fatal("the block was changed")
	}
}

// TestDamagedRepairableBlockMovedAside: a damaged block of a stream another
// copy repairs is moved into quarantine with the stream's index.db, and the
// server starts.
func TestDamagedRepairableBlockMovedAside(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "js")
	fill(t, dir, "KV_M", 50)
	flipBlock(t, dir, "KV_M")
	srv, err := Start(Options{DataDir: dir, AuditStreams: []string{"KEYLEDGER"}, Repairable: []string{"KV_M"}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	moved, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), "quarantine", "KV_M", "1.blk.*"))
	if len(moved) != 1 {
		t.Fatalf("quarantine holds %v", moved)
	}
	q, _ := os.ReadFile(moved[0])
	if now, _ := os.ReadFile(filepath.Join(blockfile.MsgsDir(dir, "KV_M"), "1.blk")); bytes.Equal(now, q) {
		t.Fatal("the damaged block is still in place")
	}
	nc, _ := srv.Connect("check")
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.Stream(context.Background(), "KV_M"); err != nil {
		t.Fatalf("the stream was not recovered: %v", fmt.Sprint(err))
	}
}
