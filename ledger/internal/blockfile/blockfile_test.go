package blockfile

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// stored is one message as published.
type stored struct {
	data []byte
	sig  string
}

// writeStream has the real embedded nats-server store n messages of about
// size bytes (with a header, as ledger messages carry their writer's
// signature) in stream name, then stops it, and returns the JetStream
// store directory and the messages by sequence (1-based).
func writeStream(t *testing.T, name string, compression jetstream.StoreCompression, n, size int) (string, []stored) {
	t.Helper()
	dir := t.TempDir()
	// A server configured as ledger/embedded configures it (file store,
	// global account), without fsync to keep the test quick.
	ns, err := server.NewServer(&server.Options{JetStream: true, StoreDir: dir, DontListen: true, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{"t.>"},
		Storage: jetstream.FileStorage, Compression: compression}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	msgs := make([]stored, n)
	for i := range msgs {
		// Compressible like ledger events: JSON-ish text with some entropy.
		var b bytes.Buffer
		for b.Len() < size {
			fmt.Fprintf(&b, `{"index":%d,"op":"Encrypt","key":"%016x"}`+"\n", i, rng.Uint64())
		}
		msgs[i] = stored{data: b.Bytes(), sig: fmt.Sprintf("sig-%d-%x", i, rng.Uint64())}
		m := nats.NewMsg("t.events")
		m.Data = msgs[i].data
		m.Header.Set("Keyledger-Signature", msgs[i].sig)
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	// Sealed blocks are compressed in the background: wait for them.
	msgsDir := MsgsDir(dir, name)
	deadline := time.Now().Add(20 * time.Second)
	for compression == jetstream.S2Compression {
		blks, _ := Blocks(msgsDir)
		done := len(blks) > 1
		for _, i := range blks[:max(len(blks)-1, 0)] {
			raw, _ := os.ReadFile(filepath.Join(msgsDir, fmt.Sprintf("%d.blk", i)))
			done = done && bytes.HasPrefix(raw, []byte("cmp"))
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sealed blocks were not compressed (blocks %v)", blks)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return dir, msgs
}

// readAll reads every block of a stream.
func readAll(t *testing.T, storeDir, name string) []*Block {
	t.Helper()
	msgs := MsgsDir(storeDir, name)
	idx, err := Blocks(msgs)
	if err != nil {
		t.Fatal(err)
	}
	var out []*Block
	for _, i := range idx {
		b, err := ReadBlock(msgs, name, i)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// check compares what was read with what was stored: every record read
// must be the message stored at its sequence, byte for byte, and the
// sequences read must be exactly want.
func check(t *testing.T, blocks []*Block, msgs []stored, want func(seq uint64) bool) (read int) {
	t.Helper()
	got := map[uint64]bool{}
	for _, b := range blocks {
		for _, r := range b.Records {
			m := msgs[r.Seq-1]
			if !bytes.Equal(r.Data, m.data) || !bytes.Contains(r.Header, []byte(m.sig)) || r.Subject != "t.events" {
				t.Fatalf("%s: the record at sequence %d is not the message stored there", b.Path, r.Seq)
			}
			if got[r.Seq] {
				t.Fatalf("sequence %d read twice", r.Seq)
			}
			got[r.Seq] = true
		}
	}
	for seq := uint64(1); seq <= uint64(len(msgs)); seq++ {
		if got[seq] != want(seq) {
			t.Fatalf("sequence %d: read %v, want %v", seq, got[seq], want(seq))
		}
	}
	return len(got)
}

func flip(t *testing.T, path string, off int64, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] ^= 0xa5
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestCompressedBlocks reads S2-compressed sealed blocks the embedded
// server wrote, whole and with 16 bytes flipped in the middle of one: only
// the records of the one damaged S2 chunk are lost, the rest of that block
// and every other block read back exactly.
func TestCompressedBlocks(t *testing.T) {
	dir, msgs := writeStream(t, "C", jetstream.S2Compression, 9000, 1100)
	blocks := readAll(t, dir, "C")
	if len(blocks) < 2 || !blocks[0].Compressed {
		t.Fatalf("want a sealed compressed block first, got %d blocks (compressed %v)", len(blocks), blocks[0].Compressed)
	}
	check(t, blocks, msgs, func(uint64) bool { return true })
	for _, b := range blocks {
		if len(b.Damage) > 0 {
			t.Fatalf("intact %s: damage %v", b.Path, b.Damage)
		}
	}

	first := blocks[0]
	st, _ := os.Stat(first.Path)
	flip(t, first.Path, st.Size()/2, 16)
	damaged := readAll(t, dir, "C")
	d := damaged[0]
	if len(d.Damage) == 0 {
		t.Fatal("the damage was not reported")
	}
	after, before := d.Damage[0].After, d.Damage[len(d.Damage)-1].Before
	if after == 0 || before <= after+1 {
		t.Fatalf("damage %v: want records read on both sides", d.Damage)
	}
	// What the damaged chunk still decodes to is kept where its records'
	// checksums hold, so the loss may be several short runs; all of them
	// lie between the records read on either side of the damage.
	got := map[uint64]bool{}
	for _, b := range damaged {
		for _, r := range b.Records {
			got[r.Seq] = true
		}
	}
	read := check(t, damaged, msgs, func(seq uint64) bool { return got[seq] || seq <= after || seq >= before })
	lost := len(msgs) - read
	// One S2 chunk holds at most 1 MiB of records.
	if lost == 0 || lost*1100 > 1<<20+2*1100 {
		t.Fatalf("%d records (%d bytes) lost for one damaged chunk", lost, lost*1100)
	}
	t.Logf("%d of %d records read; %d lost between sequences %d and %d (%v)", read, len(msgs), lost, after, before, d.Damage)
}

// TestUncompressedBlocks: with compression off, a record whose bytes are
// flipped is the only one lost, whether the flip hits its data or its
// length (then the next record is found by its checksum).
func TestUncompressedBlocks(t *testing.T) {
	dir, msgs := writeStream(t, "U", jetstream.NoCompression, 300, 700)
	blocks := readAll(t, dir, "U")
	check(t, blocks, msgs, func(uint64) bool { return true })
	path := blocks[0].Path
	orig, _ := os.ReadFile(path)
	offs := blocks[0].placed
	for _, tc := range []struct {
		name string
		at   int64
		seq  uint64
	}{
		{"data", offs[100].off + 200, 101},
		{"length", offs[200].off, 201},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(path, orig, 0o600); err != nil {
				t.Fatal(err)
			}
			flip(t, path, tc.at, 16)
			got := readAll(t, dir, "U")
			check(t, got, msgs, func(seq uint64) bool { return seq != tc.seq })
			dm := got[0].Damage
			if len(dm) != 1 || dm[0].After != tc.seq-1 || dm[0].Before != tc.seq+1 {
				t.Fatalf("damage %v, want one between %d and %d", dm, tc.seq-1, tc.seq+1)
			}
		})
	}
}

// TestEncryptedStoreRefused: a key file beside the blocks means the store
// is encrypted at rest; its blocks are refused, not misread.
func TestEncryptedStoreRefused(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "1.blk"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(dir, "1.key"), []byte("x"), 0o600)
	if _, err := Blocks(dir); err != ErrEncrypted {
		t.Fatalf("err = %v, want ErrEncrypted", err)
	}
}

// TestS2Prefix: the tolerant decoder decodes a whole S2 block exactly as
// the s2 package does (repeat offsets included), and a damaged one to a
// prefix of the original up to where the damage is.
func TestS2Prefix(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var plain bytes.Buffer
	for plain.Len() < 600_000 {
		fmt.Fprintf(&plain, `{"index":%d,"op":"Decrypt","key":"%08x"}`+"\n", plain.Len(), rng.Uint32()%64)
	}
	for _, enc := range []func([]byte, []byte) []byte{s2.Encode, s2.EncodeBetter, s2.EncodeBest} {
		block := enc(nil, plain.Bytes())
		if got := s2Prefix(block); !bytes.Equal(got, plain.Bytes()) {
			t.Fatalf("whole block: %d bytes decoded, want %d", len(got), plain.Len())
		}
		cut := s2Prefix(block[:len(block)/2])
		if len(cut) < plain.Len()/4 || !bytes.Equal(cut, plain.Bytes()[:len(cut)]) {
			t.Fatalf("half a block: %d bytes, not a prefix of the original", len(cut))
		}
	}
}
