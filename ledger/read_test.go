package ledger_test

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/checkpoint"
	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
)

// writeMessages appends n events one at a time (one message each) and
// returns the committed records.
func writeMessages(t *testing.T, dir string, n int) []event.Record {
	t.Helper()
	srv, err := embedded.Start(embedded.Options{DataDir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	l, err := ledger.Open(context.Background(), nc, ledger.Config{})
	if err != nil {
		t.Fatal(err)
	}
	head, err := l.Replay(context.Background(), chain.Head{}, func(event.Record) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	l.Start(head)
	defer l.Close()
	var recs []event.Record
	for i := 0; i < n; i++ {
		r, err := l.Append(context.Background(), newEvent("Encrypt"))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	return recs
}

// flipInRecord damages the stored message with stream sequence seq in the
// stream's first block file.
func flipInRecord(t *testing.T, dir string, seq uint64) {
	t.Helper()
	blk, _ := filepath.Glob(filepath.Join(dir, "jetstream", "*", "streams", "KEYLEDGER", "msgs", "1.blk"))
	if len(blk) != 1 {
		t.Fatalf("block file: %v", blk)
	}
	b, err := os.ReadFile(blk[0])
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off+22 <= len(b); {
		rl := int(binary.LittleEndian.Uint32(b[off:]) &^ (1 << 31))
		if binary.LittleEndian.Uint64(b[off+4:]) == seq {
			b[off+rl-8-10] ^= 0x01
			if err := os.WriteFile(blk[0], b, 0o600); err != nil {
				t.Fatal(err)
			}
			return
		}
		off += rl
	}
	t.Fatalf("no record of stream sequence %d", seq)
}

// waitUncached waits until the server reads the message at seq from disk,
// not from its cache: the ledger streams allow atomic batches, so at start
// nats-server loads the last message of each (to finish a partial batch),
// which caches the last block for its cache expiry (10 s without use).
func waitUncached(t *testing.T, srv *embedded.Server, seq uint64) {
	t.Helper()
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		time.Sleep(11 * time.Second) // any read meanwhile would keep it cached
		st, err := js.Stream(context.Background(), "KEYLEDGER")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.GetMsg(context.Background(), seq); errors.Is(err, jetstream.ErrMsgNotFound) {
			return
		}
	}
	t.Fatalf("the server still serves the damaged message at stream sequence %d", seq)
}

// TestUnreadableMessageIsNamedNotAwaited: a message corrupted on disk in
// the middle of a long ledger (read with batched direct gets) and near its end
// (read with direct gets) stops every reader within seconds with an
// *UnreadableError naming its stream sequence.
func TestUnreadableMessageIsNamedNotAwaited(t *testing.T) {
	t.Parallel() // waitUncached takes 10–20 s
	dir := t.TempDir()
	recs := writeMessages(t, dir, 400)
	bad := recs[150].Seq

	// Damaged while the server runs: one damaged before it starts is
	// refused by embedded.Start (nats-server would cut the block).
	srv := startServer(t, dir)
	flipInRecord(t, dir, bad)
	waitUncached(t, srv, bad)
	l, err := func() (*ledger.Ledger, error) {
		nc, err := srv.Connect("test")
		if err != nil {
			return nil, err
		}
		t.Cleanup(nc.Close)
		return ledger.Open(context.Background(), nc, ledger.Config{ReadOnly: true})
	}()
	if err != nil {
		t.Fatal(err)
	}
	reads := map[string]func(ctx context.Context) error{
		"replay": func(ctx context.Context) error {
			_, err := l.Replay(ctx, chain.Head{}, func(event.Record) error { return nil })
			return err
		},
		"audit": func(ctx context.Context) error {
			_, err := chain.Audit(ctx, l)
			return err
		},
		"events from shortly before": func(ctx context.Context) error {
			return l.EventsFrom(ctx, recs[140].Event.Index, func(event.Record) error { return nil })
		},
	}
	for name, read := range reads {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		started := time.Now()
		err := read(ctx)
		cancel()
		var ue *ledger.UnreadableError
		if !errors.As(err, &ue) || ue.Seq != bad {
			t.Fatalf("%s: %v after %s, want an UnreadableError at stream sequence %d", name, err, time.Since(started), bad)
		}
		if name == "replay" && (ue.After == nil || ue.After.Seq != bad-1) {
			t.Fatalf("replay does not name the last valid event: %v", ue)
		}
		t.Logf("%s: %s: %v", name, time.Since(started).Round(time.Millisecond), err)
	}
}

// TestAuditAgainstCheckpoint: a ledger extends every checkpoint of a prefix
// of itself; a checkpoint of more events is truncation, one with another
// root a rewrite.
func TestAuditAgainstCheckpoint(t *testing.T) {
	dir := t.TempDir()
	recs := writeMessages(t, dir, 37)
	srv := startServer(t, dir)
	l, _ := openLedger(t, srv, nil)
	var tree merkle.Tree
	for _, r := range recs {
		if err := tree.Append(r.Raw); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	for size := int64(1); size <= int64(len(recs)); size++ {
		root, _ := tree.Root(size)
		cp := merkle.Checkpoint{Origin: "test", Size: size, Root: root}
		if _, err := l.AuditAgainst(ctx, &cp, nil); err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
	}
	root, _ := tree.Root(int64(len(recs)))
	var mismatch *checkpoint.MismatchError
	longer := merkle.Checkpoint{Origin: "test", Size: int64(len(recs)) + 5, Root: root}
	if _, err := l.AuditAgainst(ctx, &longer, nil); !errors.As(err, &mismatch) || !mismatch.Truncated() {
		t.Fatalf("a checkpoint of more events: %v, want truncation", err)
	}
	other := merkle.Checkpoint{Origin: "test", Size: 20, Root: tlog.Hash{1}}
	if _, err := l.AuditAgainst(ctx, &other, nil); !errors.As(err, &mismatch) || mismatch.Truncated() {
		t.Fatalf("a checkpoint with another root: %v, want a rewrite", err)
	}
}
