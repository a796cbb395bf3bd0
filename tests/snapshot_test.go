package tests

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/google/go-cmp/cmp"

	"github.com/keyledger/keyledger/gateway/node"
	"github.com/keyledger/keyledger/ledger/snapshot"
	"github.com/keyledger/keyledger/ledger/writer"
	"github.com/keyledger/keyledger/projections/compliance"
	"github.com/keyledger/keyledger/projections/keystate"
)

// someTraffic makes keys, aliases, uses and refusals.
func someTraffic(t *testing.T, i *instance, tag string) {
	t.Helper()
	ctx := context.Background()
	for n := range 3 {
		id := i.createKey(tag)
		if _, err := i.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/" + tag + string(rune('a'+n))), TargetKeyId: &id}); err != nil {
			t.Fatal(err)
		}
		for range 4 {
			if _, err := i.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &id, Plaintext: []byte("x")}); err != nil {
				t.Fatal(err)
			}
		}
		_, _ = i.as("bob").Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: []byte("garbage-that-is-refused"), KeyId: &id})
	}
}

// projections is what an instance has folded.
type projections struct {
	Keys       keystate.Snapshot
	Compliance compliance.AggregatesSnapshot
	Root       string
}

func folded(t *testing.T, i *instance) projections {
	t.Helper()
	tree := i.node.Checkpointer.Tree()
	root, err := tree.Root(tree.Size())
	if err != nil {
		t.Fatal(err)
	}
	return projections{Keys: i.node.State.Snapshot(), Compliance: i.node.Projections.Agg.Snapshot(), Root: root.String()}
}

// fullReplay is the projections folded from the first event, as a node
// without snapshots builds them.
func fullReplay(t *testing.T, i *instance) projections {
	t.Helper()
	st, agg := keystate.New(), compliance.NewAggregates()
	recs := i.records()
	st.Apply(recs)
	agg.Apply(recs)
	p := folded(t, i)
	return projections{Keys: st.Snapshot(), Compliance: agg.Snapshot(), Root: p.Root}
}

// TestRestartFromSnapshotEqualsReplay: a restart restores the newest
// snapshot and folds the tail after it; the projections equal a full
// replay's. Newer snapshots that are corrupt, truncated (a crash while
// writing), of another ledger, signed by a stranger or covering an event
// the ledger does not hold are skipped with a log line.
func TestRestartFromSnapshotEqualsReplay(t *testing.T) {
	i := start(t, withSnapshots(node.Snapshots{NotAtShutdown: true})) // keep the tail to fold
	ctx := context.Background()
	someTraffic(t, i, "before")
	if err := i.node.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	someTraffic(t, i, "tail") // after the snapshot: the tail a restart folds

	store, err := i.backend.OpenSnapshots(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	list, err := store.List(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("snapshots: %v %v", list, err)
	}
	good, err := store.Raw(ctx, list[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	base := list[0].Pos
	corrupt := []byte(string(good))
	corrupt[len(corrupt)-10] ^= 1
	plant := func(offset uint64, data []byte) {
		if err := store.PutRaw(ctx, snapshot.Name(base+offset), data); err != nil {
			t.Fatal(err)
		}
	}
	plant(1, corrupt)
	plant(2, good[:len(good)/2])
	plant(3, []byte("not a snapshot"))
	other, err := i.backend.OpenSnapshots(ctx, "OTHER")
	if err != nil {
		t.Fatal(err)
	}
	head := i.node.Ledger.Head()
	h := snapshot.Header{Index: head.Index, Seq: head.Seq, Hash: head.Hash.String(), Count: head.Count}
	if err := other.Put(ctx, h, []byte("{}"), i.writer); err != nil {
		t.Fatal(err)
	}
	foreign, _ := other.Raw(ctx, snapshot.Name(h.Pos()))
	plant(4, foreign)
	h.Index, h.Count = base+5, base+6                                          // named by its position, Count-1
	if err := store.Put(ctx, h, []byte("{}"), writer.Generate()); err != nil { // a stranger's key
		t.Fatal(err)
	}
	h.Index, h.Count, h.Hash = base+6, base+7, strings.Repeat("ab", 32)
	if err := store.Put(ctx, h, []byte("{}"), i.writer); err != nil { // not the ledger's event
		t.Fatal(err)
	}

	before := folded(t, i)
	i.restart()
	after := folded(t, i)
	if diff := cmp.Diff(before, after); diff != "" {
		t.Fatalf("projections after a restart from the snapshot (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(fullReplay(t, i), after); diff != "" {
		t.Fatalf("projections from the snapshot differ from a full replay (-replay +snapshot):\n%s", diff)
	}
	logs := i.logs.String()
	if !strings.Contains(logs, `msg="projections restored from snapshot" snapshot=`+list[0].Name) {
		t.Fatalf("the good snapshot was not used:\n%s", logs)
	}
	if n := strings.Count(logs, "snapshot skipped"); n != 6 {
		t.Fatalf("%d snapshots skipped, want 6:\n%s", n, logs)
	}
	for _, why := range []string{"corrupt", "of another ledger", "not signed by a trusted writer key", "is not the ledger's"} {
		if !strings.Contains(logs, why) {
			t.Errorf("no snapshot skipped as %q", why)
		}
	}
	// The instance keeps serving and reports from its live projections.
	someTraffic(t, i, "afterwards")
}

// TestStartWithOnlyBadSnapshots: when no snapshot checks out (a crash
// while writing the only one), the ledger is replayed whole.
func TestStartWithOnlyBadSnapshots(t *testing.T) {
	i := start(t, withSnapshots(node.Snapshots{NotAtShutdown: true}))
	ctx := context.Background()
	someTraffic(t, i, "x")
	if err := i.node.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	store, _ := i.backend.OpenSnapshots(ctx, "")
	list, _ := store.List(ctx)
	good, _ := store.Raw(ctx, list[0].Name)
	if err := store.PutRaw(ctx, list[0].Name, good[:len(good)-1]); err != nil {
		t.Fatal(err)
	}
	before := folded(t, i)
	i.restart()
	if diff := cmp.Diff(before, folded(t, i)); diff != "" {
		t.Fatalf("projections after a full replay (-before +after):\n%s", diff)
	}
	if !strings.Contains(i.logs.String(), "from_snapshot=false") {
		t.Fatal("did not fall back to a full replay")
	}
}

// TestCleanShutdownSnapshots: a clean stop snapshots the final state, so
// the next start folds nothing after it and equals what was there.
func TestCleanShutdownSnapshots(t *testing.T) {
	i := start(t)
	someTraffic(t, i, "before-the-stop")
	before := folded(t, i)
	i.down()
	i.logs.Reset()
	i.up()
	logs := i.logs.String()
	if !strings.Contains(logs, "from_snapshot=true") || !strings.Contains(logs, "tail_folded=0") {
		t.Fatalf("the start after a clean stop did not resume from a snapshot of the final state:\n%s", logs)
	}
	if diff := cmp.Diff(before, folded(t, i)); diff != "" {
		t.Fatalf("projections after resuming (-before +after):\n%s", diff)
	}
}
