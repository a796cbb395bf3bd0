package tests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/salvage"
)

// TestDamagedLedgerBlock flips 16 bytes in the middle of a sealed block of
// a real ledger (three 8 MB blocks written by `keyledger serve`) and checks
// that the damage is survived, not only detected:
//
//   - the first start after it (index.db intact, so nats-server loads the
//     block lazily) serves, but the background verifier finds the damage:
//     /readyz turns 503 and an ALARM names the lost sequences;
//   - a start after kill -9, or without index.db, refuses within seconds,
//     naming the stream, nats-server's reason, the lost range and the
//     salvage command — as do `audit verify` and `backup`, instead of
//     "stream not found";
//   - `audit export --salvage` saves every event on both sides of the
//     damage byte for byte, names exactly the lost range and the broken
//     link, and does not relink: offline verification stops at the gap.
//
// With S2 compression (the default) one S2 chunk (≤ 1 MiB of events) is
// lost; without, one message.
func TestDamagedLedgerBlock(t *testing.T) {
	for _, tc := range []struct {
		name        string
		compression string
		maxLost     int    // events
		cause       string // what the refusal says nats-server said or would do
	}{
		{"s2", "s2", 1 << 20 / 10_000, "s2: corrupt input"},
		// nats-server cuts an uncompressed block at a bad record and drops
		// every record after it: serve refuses before it can, at once.
		{"uncompressed", "none", 1, "nats-server would cut the block there and drop them"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			intact, events := multiBlockLedger(t, tc.compression)
			damage := func(t *testing.T, dir string) {
				blk := filepath.Join(streamMsgs(t, dir), "2.blk")
				raw, err := os.ReadFile(blk)
				if err != nil {
					t.Fatal(err)
				}
				if compressed := bytes.HasPrefix(raw, []byte("cmp")); compressed != (tc.compression == "s2") {
					t.Fatalf("2.blk compressed: %v", compressed)
				}
				for i := len(raw)/2 - 8; i < len(raw)/2+8; i++ {
					raw[i] ^= 0xff
				}
				if err := os.WriteFile(blk, raw, 0o600); err != nil {
					t.Fatal(err)
				}
			}

			t.Run("first start: not ready, ALARM", func(t *testing.T) {
				dir := t.TempDir()
				copyTree(t, intact, dir)
				damage(t, dir)
				if tc.compression == "none" {
					code, out, _ := runWithin(t, 30*time.Second, "serve", "--data-dir", dir, "--listen", "127.0.0.1:"+strconv.Itoa(freePort(t)),
						"--principals", principalsFileIn(t, dir))
					wantRefusal(t, "serve", code, out, tc.cause)
					return
				}
				port := freePort(t)
				cmd, logs := serveArgs(t, dir, port)
				endpoint := "http://127.0.0.1:" + strconv.Itoa(port)
				for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
					if status, _ := probe(t, endpoint+"/readyz"); status == 503 {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("/readyz still 200 with a damaged block:\n%s", logs)
					}
				}
				for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), "ALARM"); time.Sleep(50 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("no ALARM:\n%s", logs)
					}
				}
				if out := logs.String(); !strings.Contains(out, "LOST: stream sequences") || !strings.Contains(out, "2.blk") {
					t.Fatalf("the ALARM does not name the lost range and block:\n%s", out)
				}
				cmd.Process.Signal(syscall.SIGKILL)
				cmd.Wait()

				// The next start (after kill -9: index.db stale) refuses.
				code, out, took := runWithin(t, 30*time.Second, "serve", "--data-dir", dir, "--listen", "127.0.0.1:"+strconv.Itoa(freePort(t)),
					"--principals", principalsFileIn(t, dir))
				wantRefusal(t, "serve after kill -9", code, out, tc.cause)
				t.Logf("serve after kill -9 refused after %s", took.Round(time.Millisecond))
			})

			t.Run("without index.db, and every command", func(t *testing.T) {
				dir := t.TempDir()
				copyTree(t, intact, dir)
				damage(t, dir)
				os.Remove(filepath.Join(streamMsgs(t, dir), "index.db"))
				before := readTree(t, filepath.Join(dir, "jetstream"))
				code, out, _ := runWithin(t, 30*time.Second, "serve", "--data-dir", dir, "--listen", "127.0.0.1:"+strconv.Itoa(freePort(t)),
					"--principals", principalsFileIn(t, dir))
				wantRefusal(t, "serve without index.db", code, out, tc.cause)
				code, out, _ = runWithin(t, 30*time.Second, "audit", "verify", "--data-dir", dir)
				wantRefusal(t, "audit verify", code, out, tc.cause)
				code, out, _ = runWithin(t, 30*time.Second, "backup", "--data-dir", dir, "--signing-key", filepath.Join(t.TempDir(), "backup.key"), "--out", filepath.Join(t.TempDir(), "b"))
				wantRefusal(t, "backup", code, out, tc.cause)
				// Nothing was changed: every block is as the damage left it —
				// but those JetStream itself expires by age when the server
				// starts (the scheduler lease, the recent checkpoints), which
				// hold nothing a refusal must keep.
				after := readTree(t, filepath.Join(dir, "jetstream"))
				for path, data := range before {
					expiring := strings.Contains(path, "_LEASES") || strings.Contains(path, "_CHECKPOINTS_RECENT")
					if filepath.Ext(path) == ".blk" && !expiring && !bytes.Equal(after[path], data) {
						t.Fatalf("%s was changed by the refused commands", path)
					}
				}
			})

			t.Run("salvage", func(t *testing.T) {
				dir := t.TempDir()
				copyTree(t, intact, dir)
				damage(t, dir)
				out := filepath.Join(t.TempDir(), "salvaged")
				code, text, _ := runWithin(t, 60*time.Second, "audit", "export", "--salvage", "--data-dir", dir, "--out", out)
				if code != 3 {
					t.Fatalf("audit export --salvage: exit %d, want 3 (saved with losses):\n%s", code, text)
				}
				t.Log(text)
				var rep salvage.Report
				js, _ := os.ReadFile(filepath.Join(out, salvage.ReportFile))
				if err := json.Unmarshal(js, &rep); err != nil {
					t.Fatal(err)
				}
				// One damaged S2 chunk: what it still decodes to is kept where
				// the records' checksums hold, so the loss may be a few
				// short runs. The ledger has several chains (the writer's
				// data chain, the key's control chain, …): each chain that
				// lost events and goes on after the gap has a break naming
				// the last event it lost; a loss names its positions when
				// every chain it may have hit resumed, else says the breaks
				// name what was lost (PerChain).
				if len(rep.Lost) == 0 || len(rep.Breaks) == 0 {
					t.Fatalf("want every loss and a break after it: %s", js)
				}
				for _, lost := range rep.Lost {
					if lost.ToSeq == 0 || !lost.PerChain && lost.ToIndex < lost.FromIndex || !strings.Contains(lost.Blocks, "2.blk") {
						t.Fatalf("lost %+v: want a closed range in 2.blk", lost)
					}
				}
				// What was lost: the events of the intact ledger the salvage
				// does not hold, in order.
				got, _ := os.ReadFile(filepath.Join(out, "events.jsonl"))
				saved := bytes.Split(bytes.TrimSuffix(got, []byte("\n")), []byte("\n"))
				lostIdx := map[uint64]bool{}
				k := 0
				for i, e := range events {
					if k < len(saved) && bytes.Equal(saved[k], e) {
						k++
						continue
					}
					lostIdx[uint64(i)] = true
				}
				if k != len(saved) {
					t.Fatalf("the salvage holds events the ledger does not, or out of order (%d of %d matched)", k, len(saved))
				}
				var firstLost, lastLost uint64 = uint64(len(events)), 0
				// What each chain lost, by index: a chain may lose two short
				// runs, and each break names the last event of the run before it.
				lostOnChain := map[string]map[uint64]string{} // chain → index → hash
				for x := range lostIdx {
					firstLost, lastLost = min(firstLost, x), max(lastLost, x)
				}
				for x := firstLost; x <= lastLost; x++ {
					if !lostIdx[x] {
						continue
					}
					ev, err := event.Decode(events[x])
					if err != nil {
						t.Fatal(err)
					}
					if lostOnChain[ev.Chain] == nil {
						lostOnChain[ev.Chain] = map[uint64]string{}
					}
					lostOnChain[ev.Chain][ev.Index] = eventHash(t, events[x])
				}
				for _, lost := range rep.Lost {
					if !lost.PerChain && (lost.FromIndex < firstLost || lost.ToIndex > lastLost) {
						t.Fatalf("lost %+v is not among the events lost (positions %d–%d)", lost, firstLost, lastLost)
					}
				}
				for _, br := range rep.Breaks {
					lostHash, ok := lostOnChain[br.Chain][br.Index-1]
					if !ok || br.NamesPrev != lostHash {
						t.Fatalf("break %+v does not name the event its chain lost before it (lost on that chain: %v)", br, lostOnChain[br.Chain])
					}
				}
				if len(lostIdx) > tc.maxLost || lastLost-firstLost > uint64(tc.maxLost) {
					t.Fatalf("%d events lost (%+v), want at most one chunk's (%d)", len(lostIdx), rep.Lost, tc.maxLost)
				}
				if firstLost < 200 || int(lastLost) > len(events)-200 {
					t.Fatalf("the damage is not in the middle: positions %d–%d of %d events", firstLost, lastLost, len(events))
				}
				if rep.Checkpoints.Verified == 0 || rep.Checkpoints.NewestSize > int64(firstLost) || rep.Checkpoints.BeyondGap == 0 {
					t.Fatalf("checkpoints: %+v", rep.Checkpoints)
				}
				// Never relinked: offline verification stops at a chain the
				// gap broke, at or after the first line after it.
				code, text = cli(t, "audit", "verify", "--offline", out, "--pubkey", filepath.Join(dir, "checkpoint.key.pub"))
				var line uint64
				if i := strings.Index(text, "chain broken at line "); i >= 0 {
					fmt.Sscanf(text[i:], "chain broken at line %d", &line)
				}
				if code == 0 || line < firstLost+1 {
					t.Fatalf("offline verification of the salvage: exit %d:\n%s", code, text)
				}
				t.Logf("%d of %d events saved; %d lost: %v", rep.Events, len(events), len(lostIdx), rep.Lost)
			})
		})
	}
}

// wantRefusal checks a command refused a damaged ledger saying what and
// where, and how to salvage.
func wantRefusal(t *testing.T, what string, code int, out, cause string) {
	t.Helper()
	for _, want := range []string{"stream KEYLEDGER", cause, "LOST: stream sequences", "2.blk", "audit export --salvage"} {
		if !strings.Contains(out, want) {
			t.Fatalf("%s: exit %d, missing %q:\n%s", what, code, want, out)
		}
	}
	if code == 0 || strings.Contains(out, "stream not found") {
		t.Fatalf("%s: exit %d:\n%s", what, code, out)
	}
}

// multiBlockLedger has `keyledger serve` write a ledger of three or more
// 8 MB blocks (large key policies), stops it cleanly, and returns the data
// directory and every event's exact bytes, from `audit export`.
func multiBlockLedger(t *testing.T, compression string) (string, [][]byte) {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	cmd, logs := serveArgs(t, dir, port, "--ledger-compression", compression)
	admin := testCredentials["admin"]
	c := newClient("http://127.0.0.1:"+strconv.Itoa(port), admin[0], admin[1])
	ctx := context.Background()
	created, err := c.CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	id := created.KeyMetadata.KeyId
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				var b strings.Builder
				b.WriteString(`{"Version":"2012-10-17","Statement":[`)
				for s := range 100 {
					if s > 0 {
						b.WriteString(",")
					}
					fmt.Fprintf(&b, `{"Sid":"w%di%ds%d","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}`, w, i, s)
				}
				b.WriteString("]}")
				p := b.String()
				if _, err := c.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: id, Policy: &p}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve did not stop cleanly: %v\n%s", err, logs)
	}
	blks, _ := filepath.Glob(filepath.Join(streamMsgs(t, dir), "*.blk"))
	if len(blks) < 3 {
		t.Fatalf("%d blocks, want 3 or more", len(blks))
	}
	exp := filepath.Join(t.TempDir(), "exp")
	if code, out := cli(t, "audit", "export", "--data-dir", dir, "--out", exp); code != 0 {
		t.Fatalf("audit export of the intact ledger: %s", out)
	}
	data, err := os.ReadFile(filepath.Join(exp, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return dir, bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
}

// serveArgs starts `keyledger serve` on dataDir with extra flags and waits
// until it answers; its log is returned.
func serveArgs(t *testing.T, dataDir string, port int, extra ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	args := append([]string{"serve", "--data-dir", dataDir, "--listen", "127.0.0.1:" + strconv.Itoa(port),
		"--principals", principalsFileIn(t, dataDir), "--log-level", "warn"}, extra...)
	cmd := exec.Command(binary, args...)
	logs := &syncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	admin := testCredentials["admin"]
	c := newClient("http://127.0.0.1:"+strconv.Itoa(port), admin[0], admin[1])
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := c.ListKeys(context.Background(), &kms.ListKeysInput{}); err == nil {
			return cmd, logs
		}
		if time.Now().After(deadline) {
			t.Fatalf("keyledger serve did not come up:\n%s", logs)
		}
	}
}

// principalsFileIn writes the test principals beside a data directory.
func principalsFileIn(t *testing.T, dataDir string) string {
	t.Helper()
	p := filepath.Join(filepath.Dir(dataDir), filepath.Base(dataDir)+"-principals.json")
	if err := os.WriteFile(p, []byte(testPrincipals), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// eventHash is the hex SHA-256 of an event's exact bytes (its chain hash).
func eventHash(t *testing.T, raw []byte) string {
	t.Helper()
	h := sha256.Sum256(raw)
	return hex.EncodeToString(h[:])
}
