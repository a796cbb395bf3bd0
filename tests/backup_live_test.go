package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/event"
)

// liveOp is one request the load made that was acknowledged.
type liveOp struct {
	kind             string // create, alias, grant, encrypt, disable
	keyID            string
	name             string // alias name or grant id
	plain, blob      []byte
	acknowledgedTime time.Time
}

// TestLiveBackupUnderLoad backs up the default embedded deployment while it
// serves: a real `keyledger serve` with its NATS listener takes keys,
// aliases, grants, encryptions and disables from four clients, and
// `keyledger backup --nats-url … --nats-creds <data-dir>/nats-backup.nk
// --data-dir …` runs three times meanwhile. Each backup must succeed and
// leave the deployment's streams as they were (it only reads). The last
// backup is restored into a new data directory and served: everything the
// original ledger recorded before the cut is there — keys (their
// ciphertexts decrypt), aliases, grants, disabled states — and nothing
// recorded after it; `audit verify` passes on the restored directory.
func TestLiveBackupUnderLoad(t *testing.T) {
	dataDir := t.TempDir()
	port, natsPort := freePort(t), freePort(t)
	srv := serveWithArgs(t, dataDir, port, "--nats-listen", "127.0.0.1:"+strconv.Itoa(natsPort))
	admin := testCredentials["admin"]
	c := newClient("http://127.0.0.1:"+strconv.Itoa(port), admin[0], admin[1])
	natsURL := "nats://127.0.0.1:" + strconv.Itoa(natsPort)
	streamsBefore := streamNames(t, natsURL, filepath.Join(dataDir, "nats-keyledger.nk"))

	ctx, stopLoad := context.WithCancel(context.Background())
	var mu sync.Mutex
	var ops []liveOp
	record := func(op liveOp) {
		op.acknowledgedTime = time.Now()
		mu.Lock()
		ops = append(ops, op)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				liveLoad(ctx, c, fmt.Sprintf("w%d-%d", w, i), record)
			}
		}()
	}
	waitFor(t, 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(ops) > 40 })
	// A live backup ends at the newest stored checkpoint (one a second).
	waitFor(t, 10*time.Second, func() bool {
		code, _ := cli(t, "audit", "checkpoint", "--nats-url", natsURL, "--nats-creds", filepath.Join(dataDir, "nats-audit.nk"))
		return code == 0
	})

	signingKey := filepath.Join(t.TempDir(), "backup.key")
	var backups []string
	backupStart := time.Now()
	for i := range 3 {
		out := filepath.Join(t.TempDir(), "backup")
		code, text := cli(t, "backup", "--nats-url", natsURL, "--nats-creds", filepath.Join(dataDir, "nats-backup.nk"),
			"--data-dir", dataDir, "--signing-key", signingKey, "--out", out)
		if code != 0 || !strings.Contains(text, "OK: backed up") {
			t.Fatalf("backup %d of the running server: exit %d\n%s", i+1, code, text)
		}
		t.Log(strings.TrimSpace(text))
		backups = append(backups, out)
		time.Sleep(300 * time.Millisecond) // more load between backups
	}
	stopLoad()
	wg.Wait()
	if got := streamNames(t, natsURL, filepath.Join(dataDir, "nats-keyledger.nk")); !slices.Equal(got, streamsBefore) {
		t.Errorf("the backups changed the deployment's streams: %v, before %v", got, streamsBefore)
	}
	stop(t, srv)
	mu.Lock()
	t.Logf("%d acknowledged requests under load", len(ops))
	mu.Unlock()

	// Where each acknowledged request landed in the original ledger.
	export := filepath.Join(t.TempDir(), "export")
	if code, out := cli(t, "audit", "export", "--data-dir", dataDir, "--out", export); code != 0 {
		t.Fatalf("audit export: exit %d\n%s", code, out)
	}
	at := indexOps(t, filepath.Join(export, "events.jsonl"))

	b := backups[len(backups)-1]
	cut := readManifest(t, b).Events
	escrow := t.TempDir()
	for _, name := range []string{"root.key", "writer.key", "checkpoint.key", "checkpoint.key.pub"} {
		copyFile(t, filepath.Join(dataDir, name), filepath.Join(escrow, name))
	}
	restored := filepath.Join(t.TempDir(), "restored")
	code, out := cli(t, "restore", "--from", b, "--data-dir", restored, "--pubkey", filepath.Join(escrow, "checkpoint.key.pub"),
		"--backup-pubkey", signingKey+".pub", "--writer-key", filepath.Join(escrow, "writer.key"),
		"--not-before", backupStart.Add(-5*time.Second).UTC().Format(time.RFC3339Nano))
	if code != 0 || !strings.Contains(out, "OK: restored") {
		t.Fatalf("restore: exit %d\n%s", code, out)
	}
	t.Log(strings.TrimSpace(out))
	if code, out := cli(t, "audit", "verify", "--data-dir", restored); code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("audit verify on the restored data directory: exit %d\n%s", code, out)
	}
	for _, name := range []string{"root.key", "checkpoint.key", "checkpoint.key.pub"} {
		copyFile(t, filepath.Join(escrow, name), filepath.Join(restored, name))
	}
	port2 := freePort(t)
	srv2 := serveWithArgs(t, restored, port2)
	defer stop(t, srv2)
	rc := newClient("http://127.0.0.1:"+strconv.Itoa(port2), admin[0], admin[1])
	checkRestored(t, rc, ops, at, cut)
}

// liveLoad makes one round of requests for a new key, recording each that
// was acknowledged. Errors after ctx ends are expected and not recorded.
func liveLoad(ctx context.Context, c *kms.Client, tag string, record func(liveOp)) {
	k, err := c.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("live " + tag)})
	if err != nil {
		return
	}
	id := *k.KeyMetadata.KeyId
	record(liveOp{kind: "create", keyID: id})
	alias := "alias/live-" + tag
	if _, err := c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: &alias, TargetKeyId: &id}); err == nil {
		record(liveOp{kind: "alias", keyID: id, name: alias})
	}
	g, err := c.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: &id, GranteePrincipal: aws.String("arn:aws:iam::111122223333:user/alice"),
		Operations: []types.GrantOperation{types.GrantOperationDecrypt}})
	if err == nil {
		record(liveOp{kind: "grant", keyID: id, name: *g.GrantId})
	}
	plain := []byte("acknowledged " + tag)
	if e, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: &id, Plaintext: plain}); err == nil {
		record(liveOp{kind: "encrypt", keyID: id, plain: plain, blob: e.CiphertextBlob})
	}
	if strings.HasSuffix(tag, "3") {
		if _, err := c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: &id}); err == nil {
			record(liveOp{kind: "disable", keyID: id})
		}
	}
}

// ledgerPlaces is where the original ledger recorded each request: event
// counts (index+1) by what they created.
type ledgerPlaces struct {
	created, disabled map[string]int64 // key id →
	alias, grant      map[string]int64 // alias name, grant id →
}

func indexOps(t *testing.T, eventsFile string) ledgerPlaces {
	t.Helper()
	data, err := os.ReadFile(eventsFile)
	if err != nil {
		t.Fatal(err)
	}
	p := ledgerPlaces{created: map[string]int64{}, disabled: map[string]int64{}, alias: map[string]int64{}, grant: map[string]int64{}}
	for i, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		ev, err := event.Decode(line)
		if err != nil {
			t.Fatal(err)
		}
		n := int64(i) + 1 // the events up to it, in stream order (its position + 1)
		switch b := ev.Body.(type) {
		case *event.KeyCreated:
			p.created[ev.KeyID] = n
		case *event.KeyDisabled:
			p.disabled[ev.KeyID] = n
		case *event.AliasCreated:
			p.alias[b.AliasName] = n
		case *event.GrantCreated:
			p.grant[b.GrantID] = n
		}
	}
	return p
}

// checkRestored requires the restored service to answer exactly as the
// original ledger stood at the cut, for every acknowledged request.
func checkRestored(t *testing.T, c *kms.Client, ops []liveOp, at ledgerPlaces, cut int64) {
	t.Helper()
	ctx := context.Background()
	var before, after int
	for _, op := range ops {
		var n int64
		var ok bool
		switch op.kind {
		case "create", "encrypt":
			n, ok = at.created[op.keyID]
		case "disable":
			n, ok = at.disabled[op.keyID]
		case "alias":
			n, ok = at.alias[op.name]
		case "grant":
			n, ok = at.grant[op.name]
		}
		if !ok {
			t.Errorf("acknowledged %s %s %s is not in the original ledger", op.kind, op.keyID, op.name)
			continue
		}
		in := n <= cut
		if in {
			before++
		} else {
			after++
		}
		switch op.kind {
		case "create":
			_, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &op.keyID})
			if in && err != nil {
				t.Errorf("key %s, created before the cut (event %d ≤ %d), is not restored: %v", op.keyID, n, cut, err)
			}
			if !in && err == nil {
				t.Errorf("key %s, created after the cut (event %d > %d), is restored", op.keyID, n, cut)
			}
		case "encrypt":
			if !in {
				continue
			}
			d, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: op.blob})
			var disabled *types.DisabledException
			if errors.As(err, &disabled) {
				continue // its key was disabled before the cut too
			}
			if err != nil || !bytes.Equal(d.Plaintext, op.plain) {
				t.Errorf("ciphertext of key %s (restored) does not decrypt: %v", op.keyID, err)
			}
		case "disable":
			if _, ok := at.created[op.keyID]; !ok || at.created[op.keyID] > cut {
				continue
			}
			d, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &op.keyID})
			if err != nil {
				t.Errorf("describe %s: %v", op.keyID, err)
				continue
			}
			if got := d.KeyMetadata.Enabled; got == in {
				t.Errorf("key %s: enabled %v on the restored server; disabled at event %d, cut %d", op.keyID, got, n, cut)
			}
		case "alias":
			d, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &op.name})
			if in && (err != nil || *d.KeyMetadata.KeyId != op.keyID) {
				t.Errorf("alias %s, created before the cut, does not name %s: %v", op.name, op.keyID, err)
			}
			if !in && err == nil {
				t.Errorf("alias %s, created after the cut, is restored", op.name)
			}
		case "grant":
			if at.created[op.keyID] > cut {
				continue // its key is not restored; checked above
			}
			g, err := c.ListGrants(ctx, &kms.ListGrantsInput{KeyId: &op.keyID})
			if err != nil {
				t.Errorf("list grants of %s: %v", op.keyID, err)
				continue
			}
			found := slices.ContainsFunc(g.Grants, func(e types.GrantListEntry) bool { return *e.GrantId == op.name })
			if found != in {
				t.Errorf("grant %s on %s: listed %v on the restored server; created at event %d, cut %d", op.name, op.keyID, found, n, cut)
			}
		}
	}
	t.Logf("%d acknowledged requests before the cut (%d events), %d after", before, cut, after)
	if before == 0 || after == 0 {
		t.Errorf("the cut did not fall inside the load (%d before, %d after): the check proves little", before, after)
	}
}

// serveWithArgs starts `keyledger serve` on dataDir with extra flags and
// waits until it answers.
func serveWithArgs(t *testing.T, dataDir string, port int, extra ...string) *exec.Cmd {
	t.Helper()
	principalsFile := filepath.Join(dataDir, "test-principals.json")
	if err := os.WriteFile(principalsFile, []byte(testPrincipals), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--listen", "127.0.0.1:" + strconv.Itoa(port), "--principals", principalsFile,
		"--data-dir", dataDir, "--log-level", "error"}, extra...)
	cmd := exec.Command(binary, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	admin := testCredentials["admin"]
	c := newClient("http://127.0.0.1:"+strconv.Itoa(port), admin[0], admin[1])
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, err := c.ListKeys(context.Background(), &kms.ListKeysInput{})
		if err == nil {
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve does not answer within 20s: %v\n%s", err, stderr.String())
		}
	}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v", timeout)
		}
	}
}

// streamNames lists the deployment's streams as keyledger's own identity
// sees them.
func streamNames(t *testing.T, url, seedFile string) []string {
	t.Helper()
	opt, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var names []string
	l := js.StreamNames(ctx)
	for n := range l.Name() {
		names = append(names, n)
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}
