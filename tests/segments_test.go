package tests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
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
	"github.com/keyledger/keyledger/ledger/offline"
)

// TestPruneArchivedSegments: a ledger rolled into segment streams is
// archived (whole segments), pruning is refused inside the retention and
// for the segment being written, then the archived segments are removed;
// the instance restarts from the base with its keys, `audit verify` online
// passes from the base, `audit verify --offline` over the archive and a
// live export passes, and a tampered archive is caught.
func TestPruneArchivedSegments(t *testing.T) {
	port := freePort(t)
	startNATS(t, t.TempDir(), port)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	in := start(t, withNATS(url), func(i *instance) { i.ledgerCf.SegmentMessages = 3 })
	ctx := context.Background()
	k := in.createKey("segments")
	var blobs [][]byte
	encrypt := func(n int) {
		for i := 0; i < n; i++ {
			out, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x")})
			if err != nil {
				t.Fatal(err)
			}
			blobs = append(blobs, out.CiphertextBlob)
		}
	}
	encrypt(8)
	in.clock.Advance(2 * time.Hour)
	cut := in.clock.Now().Add(-time.Hour)
	encrypt(8)
	if _, err := in.node.Checkpointer.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pub := filepath.Join(dir, "checkpoint.pub")
	os.WriteFile(pub, []byte(in.vkey+"\n"), 0o644)
	seed := sha256.Sum256([]byte("keyledger test writer " + url)) // testWriterKey's
	wk := filepath.Join(dir, "writer.key")
	os.WriteFile(wk, []byte(base64.StdEncoding.EncodeToString(seed[:])+"\n"), 0o600)

	archive := filepath.Join(dir, "archive")
	code, out := cli(t, "audit", "archive", "--nats-url", url, "--before", cut.Format(time.RFC3339), "--out", archive, "--pubkey", pub, "--whole-segments")
	if code != 0 || !strings.Contains(out, "OK: archived events 0–") {
		t.Fatalf("archive: %d %s", code, out)
	}
	everything := filepath.Join(dir, "everything")
	if code, out := cli(t, "audit", "archive", "--nats-url", url, "--before", in.clock.Now().Add(time.Hour).Format(time.RFC3339),
		"--out", everything, "--pubkey", pub); code != 0 {
		t.Fatalf("archive of everything: %d %s", code, out)
	}
	prune := func(dir string, extra ...string) (int, string) {
		return cli(t, append([]string{"audit", "prune", "--nats-url", url, "--archive", dir, "--pubkey", pub, "--writer-key", wk}, extra...)...)
	}
	if code, out := prune(archive); code != 1 || !strings.Contains(out, "REFUSED") || !strings.Contains(out, "removable from 2027-11-27") {
		t.Fatalf("prune inside the default retention: %d %s", code, out)
	}
	if code, out := prune(everything, "--retention", "24h"); code != 1 || !strings.Contains(out, "does not end a closed segment") {
		t.Fatalf("prune of the segment being written: %d %s", code, out)
	}

	in.down() // a clean stop snapshots the state the restart resumes from
	code, out = prune(archive, "--retention", "24h")
	if code != 0 || !strings.Contains(out, "OK: removed events 0–") || !strings.Contains(out, "KEYLEDGER,") {
		t.Fatalf("prune: %d %s", code, out)
	}
	t.Log(out)
	if code, out := prune(archive, "--retention", "24h"); code != 0 {
		t.Fatalf("prune again (nothing left to do): %d %s", code, out)
	}
	in.up()
	// The key state from the removed segments is the snapshot's: old
	// ciphertexts still decrypt.
	if _, err := in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blobs[0]}); err != nil {
		t.Fatalf("decrypting a ciphertext from a removed segment's time: %v", err)
	}
	encrypt(4)
	signed, err := in.node.Checkpointer.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := merkle.Open(signed, in.vkey)
	if err != nil {
		t.Fatal(err)
	}
	// An inclusion proof for the first live event, from the tree continued
	// from the base, checks against the signed root of the whole ledger.
	code, out = cli(t, "audit", "prove", "--nats-url", url, "--index", "9", "--size", strconv.FormatInt(cp.Size, 10))
	var proof struct {
		Root     tlog.Hash        `json:"root"`
		LeafHash tlog.Hash        `json:"leafHash"`
		Proof    tlog.RecordProof `json:"proof"`
	}
	if err := json.Unmarshal([]byte(out), &proof); code != 0 || err != nil {
		t.Fatalf("prove after the removal: %d %s %v", code, out, err)
	}
	if proof.Root != cp.Root || tlog.CheckRecord(proof.Proof, cp.Size, cp.Root, 9, proof.LeafHash) != nil {
		t.Fatalf("the inclusion proof of event 9 does not check against the signed root: %s", out)
	}
	if !strings.Contains(in.logs.String(), "projections restored from snapshot") {
		t.Fatalf("the restart did not resume from a snapshot")
	}
	code, out = cli(t, "audit", "verify", "--nats-url", url, "--pubkey", pub)
	t.Log(out)
	if code != 0 || !strings.Contains(out, "OK") || !strings.Contains(out, "after removed segments") {
		t.Fatalf("verify online from the base: %d %s", code, out)
	}
	// Reports and time travel fold from the base only when a signed
	// checkpoint vouches for its writers.
	if code, out := cli(t, "report", "compliance", "--nats-url", url, "--pubkey", pub); code != 0 || !strings.Contains(out, `"checks"`) {
		t.Fatalf("report after the removal: %d %.300s", code, out)
	}
	if code, out := cli(t, "report", "compliance", "--nats-url", url, "--pubkey", filepath.Join(dir, "no-such.pub")); code != 1 || !strings.Contains(out, "vouch") {
		t.Fatalf("report after the removal without a checkpoint key: %d %.300s", code, out)
	}
	export := filepath.Join(dir, "export")
	if code, out := cli(t, "audit", "export", "--nats-url", url, "--out", export); code != 0 {
		t.Fatalf("export: %d %s", code, out)
	}
	if _, err := os.Stat(filepath.Join(export, "base.json")); err != nil {
		t.Fatalf("export after a removal has no base.json: %v", err)
	}
	code, out = cli(t, "audit", "verify", "--offline", export, "--pubkey", pub, "--archive", archive)
	if code != 0 || !strings.Contains(out, "join into one ledger") {
		t.Fatalf("archive + live export: %d %s", code, out)
	}
	// A changed archived event is caught.
	bad := filepath.Join(dir, "bad")
	os.Mkdir(bad, 0o755)
	entries, _ := os.ReadDir(archive)
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(archive, e.Name()))
		if e.Name() == offline.EventsFile {
			b = bytes.Replace(b, []byte(`"Encrypt"`), []byte(`"Decrypt"`), 1)
		}
		os.WriteFile(filepath.Join(bad, e.Name()), b, 0o644)
	}
	if code, out := cli(t, "audit", "verify", "--offline", export, "--pubkey", pub, "--archive", bad); code != 1 || !strings.Contains(out, "FAILED") {
		t.Fatalf("tampered archive: %d %s", code, out)
	}
}

// A live segment stream deleted by hand (NATS admin) with no SegmentRemoved
// recorded is refused by readers, naming the missing stream sequences.
func TestDeletedLiveSegmentIsRefused(t *testing.T) {
	port := freePort(t)
	startNATS(t, t.TempDir(), port)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	in := start(t, withNATS(url), func(i *instance) { i.ledgerCf.SegmentMessages = 2 })
	ctx := context.Background()
	k := in.createKey("segments")
	for i := 0; i < 6; i++ {
		if _, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	in.down()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if err := js.DeleteStream(ctx, "KEYLEDGER_1"); err != nil {
		t.Fatal(err)
	}
	code, out := cli(t, "audit", "verify", "--nats-url", url)
	if code != 1 || !strings.Contains(out, "no SegmentRemoved event records their removal") {
		t.Fatalf("verify after a segment was deleted by hand: %d %s", code, out)
	}
	t.Log(out)
}

// TestTwoInstancesRollSegments: two instances on one NATS server write at
// once while rolling to a new segment every few messages. Every answered
// Encrypt decrypts on the other instance (each followed the other into its
// segments), both agree on one head, and `audit verify` passes over all
// the segments.
func TestTwoInstancesRollSegments(t *testing.T) {
	t.Parallel() // its own servers and directories: runs beside the others
	port := freePort(t)
	startNATS(t, t.TempDir(), port)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	roll := func(i *instance) { i.ledgerCf.SegmentMessages = 8 }
	a := start(t, withNATS(url), roll)
	b := start(t, withNATS(url), roll)
	b.root = a.root // one deployment, one root key
	b.restart()
	ctx := context.Background()
	key := a.createKey("rolling")
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := b.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &key}); err == nil {
			break
		} else if time.Now().After(end) {
			t.Fatalf("instance b never saw the key: %v", err)
		}
	}
	type answer struct {
		blob []byte
		by   *instance
	}
	var mu sync.Mutex
	var answers []answer
	var refused []string
	var wg sync.WaitGroup
	for _, in := range []*instance{a, b} {
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 40; i++ {
					out, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &key, Plaintext: []byte("x")})
					if err != nil {
						mu.Lock()
						refused = append(refused, err.Error())
						mu.Unlock()
						continue // a refused append under contention: SDKs retry
					}
					mu.Lock()
					answers = append(answers, answer{out.CiphertextBlob, in})
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if len(refused) > 0 {
		t.Logf("%d refused; first: %s", len(refused), refused[0])
		for _, in := range []*instance{a, b} {
			for _, line := range strings.Split(in.logs.String(), "\n") {
				if strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN") {
					t.Log(line)
				}
			}
		}
	}
	if len(answers) < 200 {
		t.Fatalf("only %d of 320 Encrypts answered", len(answers))
	}
	for end := time.Now().Add(10 * time.Second); a.node.Ledger.Head() != b.node.Ledger.Head() && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
	}
	if a.node.Ledger.Head() != b.node.Ledger.Head() {
		t.Fatalf("instances disagree: %+v vs %+v", a.node.Ledger.Head(), b.node.Ledger.Head())
	}
	if q := a.node.Ledger.Quarantined() + b.node.Ledger.Quarantined(); q > 0 {
		t.Fatalf("%d messages quarantined by the instances: %v %v", q, a.node.Ledger.QuarantineReasons(), b.node.Ledger.QuarantineReasons())
	}
	for _, ans := range answers {
		other := a
		if ans.by == a {
			other = b
		}
		if _, err := other.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: ans.blob}); err != nil {
			t.Fatalf("a ciphertext answered by one instance does not decrypt on the other: %v", err)
		}
	}
	segs, err := a.node.Ledger.Segments(ctx)
	if err != nil || len(segs) < 4 {
		t.Fatalf("segments: %d, %v", len(segs), err)
	}
	code, out := cli(t, "audit", "verify", "--nats-url", url)
	if code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("verify over %d segments: %d %s", len(segs), code, out)
	}
	t.Logf("%d Encrypts answered over %d segments; %s", len(answers), len(segs), strings.SplitN(out, "\n", 2)[0])
}
