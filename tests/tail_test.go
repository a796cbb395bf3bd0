package tests

import (
	"bytes"
	"context"
	bin "encoding/binary"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// TestCorruptOrTruncatedTailIsRefused damages the ledger's block files the
// way a failing disk or an attacker would, and checks that `keyledger serve`
// and `keyledger audit verify --data-dir` refuse within 10 s, naming what and
// where, instead of hanging (a flipped byte or a cut block) or passing (a
// tail removed cleanly, caught by the newest signed checkpoint).
func TestCorruptOrTruncatedTailIsRefused(t *testing.T) {
	t.Parallel() // its own servers and directories: runs beside the others
	ledgerDir := writtenLedger(t)
	cases := []struct {
		name   string
		damage func(t *testing.T, msgs string)
		want   string
	}{
		{"a byte flipped in the last event", func(t *testing.T, msgs string) {
			blk := lastBlock(t, msgs)
			recs := blockRecords(t, blk)
			last := recs[len(recs)-1]
			flipByteAt(t, blk, last.off+last.size-8-20) // inside the event, before the record's checksum
		}, "cannot be read"},
		{"the last block cut by 100 bytes", func(t *testing.T, msgs string) {
			blk := lastBlock(t, msgs)
			st, err := os.Stat(blk)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(blk, st.Size()-100); err != nil {
				t.Fatal(err)
			}
		}, "cannot be read"},
		{"the tail's blocks and index.db deleted", func(t *testing.T, msgs string) {
			// The test ledger fits one 8 MB block, so "the last blocks" are
			// its last 30% of messages, cut at a message boundary: what is
			// left is a clean, shorter stream that still links.
			blk := lastBlock(t, msgs)
			recs := blockRecords(t, blk)
			if err := os.Truncate(blk, recs[len(recs)*7/10].off); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(msgs, "index.db")); err != nil {
				t.Fatal(err)
			}
		}, "ledger truncated"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, cmd := range []string{"audit verify", "serve"} {
				dir := t.TempDir()
				copyTree(t, ledgerDir, dir)
				tc.damage(t, streamMsgs(t, dir))
				args := append(strings.Fields(cmd), "--data-dir", dir)
				if cmd == "serve" {
					args = append(args, "--listen", "127.0.0.1:"+strconv.Itoa(freePort(t)))
				}
				code, out, took := runWithin(t, 10*time.Second, args...)
				if code == 0 || !strings.Contains(out, tc.want) {
					t.Fatalf("%s: exit %d after %s, want non-zero and %q:\n%s", cmd, code, took, tc.want, out)
				}
				if !strings.Contains(out, "stream sequence") && !strings.Contains(out, "events from index") {
					t.Fatalf("%s does not say where:\n%s", cmd, out)
				}
				t.Logf("%s: exit %d after %s: %s", cmd, code, took.Round(time.Millisecond), lastLine(out))
			}
		})
	}
	// The undamaged copy verifies, against its checkpoint written at shutdown.
	dir := t.TempDir()
	copyTree(t, ledgerDir, dir)
	code, out, _ := runWithin(t, 10*time.Second, "audit", "verify", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "the ledger extends the newest signed checkpoint") {
		t.Fatalf("the intact ledger: exit %d:\n%s", code, out)
	}
}

// writtenLedger runs `keyledger serve`, makes more messages than a reader
// fetches one by one (so replay streams them), and stops it cleanly.
func writtenLedger(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	cmd := serveProcess(t, dir, port)
	admin := testCredentials["admin"]
	c := newClient("http://127.0.0.1:"+strconv.Itoa(port), admin[0], admin[1])
	ctx := context.Background()
	out, err := c.CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		if _, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: out.KeyMetadata.KeyId, Plaintext: []byte("tail")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve did not stop cleanly: %v", err)
	}
	return dir
}

// runWithin runs the keyledger binary and fails the test if it has not
// exited after d.
func runWithin(t *testing.T, d time.Duration, args ...string) (int, string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), "KEYLEDGER_LOG_LEVEL=warn")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("keyledger %s still running after %s:\n%s", strings.Join(args, " "), d, out)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out), took
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out), took
}

// streamMsgs is the directory of the ledger stream's block files.
func streamMsgs(t *testing.T, dataDir string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dataDir, "jetstream", "jetstream", "*", "streams", "KEYLEDGER", "msgs"))
	if len(m) != 1 {
		t.Fatalf("ledger stream directory: %v", m)
	}
	return m[0]
}

// lastBlock is the newest block file of a stream.
func lastBlock(t *testing.T, msgs string) string {
	t.Helper()
	blks, _ := filepath.Glob(filepath.Join(msgs, "*.blk"))
	best, bestN := "", -1
	for _, b := range blks {
		n, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(b), ".blk"))
		if err == nil && n > bestN {
			best, bestN = b, n
		}
	}
	if best == "" {
		t.Fatalf("no block files in %s", msgs)
	}
	return best
}

// blockRecord is one message record in a nats-server block file.
type blockRecord struct {
	off, size int64
	seq       uint64
}

// blockRecords walks a block file's records: each starts with a 22-byte
// header (length with the has-headers bit, sequence, timestamp, subject
// length) and ends with an 8-byte checksum.
func blockRecords(t *testing.T, path string) []blockRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []blockRecord
	for off := 0; off+22 <= len(b); {
		rl := int(bin.LittleEndian.Uint32(b[off:]) &^ (1 << 31))
		if rl < 22 || off+rl > len(b) {
			t.Fatalf("%s: unexpected record at %d", path, off)
		}
		out = append(out, blockRecord{off: int64(off), size: int64(rl), seq: bin.LittleEndian.Uint64(b[off+4:])})
		off += rl
	}
	if len(out) < 10 {
		t.Fatalf("%s holds only %d records", path, len(out))
	}
	return out
}

func flipByteAt(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x20
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

// copyTree copies a data directory, keeping file modes (key files are 0600).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(target, info.Mode().Perm())
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

func lastLine(s string) string {
	lines := bytes.Split(bytes.TrimSpace([]byte(s)), []byte("\n"))
	return string(lines[len(lines)-1])
}
