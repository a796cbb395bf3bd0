package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/snapshot"
	"github.com/keyledger/keyledger/projections/compliance"
	"github.com/keyledger/keyledger/projections/timetravel"
)

// snapshotted takes a snapshot now and returns the latest event time it
// covers, as its listing says.
func snapshotted(t *testing.T, i *instance, store *snapshot.Store) time.Time {
	t.Helper()
	ctx := context.Background()
	if err := i.node.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	list, err := store.List(ctx)
	if err != nil || len(list) == 0 || list[0].EventTime.IsZero() {
		t.Fatalf("snapshots: %v %v", list, err)
	}
	return list[0].EventTime
}

// fullFold is the time-travel answer folded from the ledger's first event.
func fullFold(t *testing.T, i *instance, key string, at time.Time) timetravel.Answer {
	t.Helper()
	f := timetravel.NewFolder(at)
	for _, r := range i.records() {
		if f.Fold(r) != nil {
			break
		}
	}
	return f.Describe(key, testRegion)
}

// TestTimeTravelAcrossSnapshots: asked for a time before, at and after
// each of two snapshots, GET /audit/keys/<id>?asOf= and keys describe
// --as-of start from the newest snapshot at or before the time and answer
// exactly what a fold from the first event answers, including who could
// decrypt (the principals in force come from the snapshot).
func TestTimeTravelAcrossSnapshots(t *testing.T) {
	port := freePort(t)
	startNATS(t, t.TempDir(), port)
	natsURL := "nats://127.0.0.1:" + strconv.Itoa(port)
	in := start(t, withNATS(natsURL))
	ctx := context.Background()
	store, err := in.backend.OpenSnapshots(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t0 := in.clock.Now()
	k := in.createKey("travel")
	in.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/travel"), TargetKeyId: &k})
	in.clock.Advance(time.Hour)
	putPolicy(t, in, k, `{"Statement":[`+adminStatement+`,
	 {"Sid":"AliceDecrypts","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:Decrypt","Resource":"*"}]}`)
	first := snapshotted(t, in, store)
	in.clock.Advance(time.Hour)
	in.kms.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: &k, GranteePrincipal: aws.String("arn:aws:iam::444455556666:user/dave"),
		Operations: []types.GrantOperation{types.GrantOperationDecrypt}})
	in.clock.Advance(time.Hour)
	in.kms.TagResource(ctx, &kms.TagResourceInput{KeyId: &k, Tags: []types.Tag{{TagKey: aws.String("team"), TagValue: aws.String("blue")}}})
	second := snapshotted(t, in, store)
	in.clock.Advance(time.Hour)
	in.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: &k})
	in.clock.Advance(time.Hour)

	ask := func(at time.Time) timetravel.Answer {
		t.Helper()
		path := "/audit/keys/" + k + "?asOf=" + url.QueryEscape(at.Format(time.RFC3339Nano))
		status, body := getAudit(t, in, "admin", path)
		var ans timetravel.Answer
		if status != 200 || json.Unmarshal(body, &ans) != nil {
			t.Fatalf("as of %v: %d %s", at, status, body)
		}
		return ans
	}
	pub := filepath.Join(t.TempDir(), "checkpoint.pub")
	if err := os.WriteFile(pub, []byte(in.vkey), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := in.node.Checkpointer.Checkpoint(ctx); err != nil { // names the writer, so the CLI trusts its snapshots
		t.Fatal(err)
	}
	describe := func(at time.Time) timetravel.Answer {
		t.Helper()
		code, out := cli(t, "keys", "describe", k, "--as-of", at.Format(time.RFC3339Nano), "--nats-url", natsURL, "--pubkey", pub)
		var ans timetravel.Answer
		if code != 0 || json.Unmarshal([]byte(out), &ans) != nil {
			t.Fatalf("keys describe as of %v: %d %s", at, code, out)
		}
		return ans
	}
	ignoreStart := cmpopts.IgnoreFields(timetravel.Answer{}, "SnapshotIndex")
	compact := cmp.Transformer("compact", func(m json.RawMessage) string { // the CLI indents its output
		var b bytes.Buffer
		_ = json.Compact(&b, m)
		return b.String()
	})
	for _, tc := range []struct {
		name     string
		at       time.Time
		snapshot bool // an answer from a snapshot
	}{
		{"before the key", t0.Add(-time.Minute), false},
		{"before the first snapshot", first.Add(-time.Nanosecond), false},
		{"at the first snapshot", first, true},
		{"after the first snapshot", first.Add(90 * time.Minute), true},
		{"at the second snapshot", second, true},
		{"after the second snapshot", second.Add(90 * time.Minute), true},
		{"after everything", in.clock.Now().Add(time.Hour), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := fullFold(t, in, k, tc.at)
			for how, got := range map[string]timetravel.Answer{"HTTP": ask(tc.at), "CLI": describe(tc.at)} {
				if diff := cmp.Diff(want, got, ignoreStart, compact); diff != "" {
					t.Errorf("%s answer differs from a full fold (-full +%s):\n%s", how, how, diff)
				}
				if (got.SnapshotIndex != nil) != tc.snapshot {
					t.Errorf("%s: started from snapshot %v, want from a snapshot: %v", how, got.SnapshotIndex, tc.snapshot)
				}
			}
			if !want.AsOf.Before(second) && want.Exists && len(want.WhoCanDecrypt) == 0 {
				t.Error("no one could decrypt: the principals in force were lost")
			}
		})
	}
}

// TestReportComplianceFromSnapshotEqualsFullFold: report compliance on a
// ledger answers from the newest snapshot and the events after it the
// same report as folding the whole ledger (--full), but for the integrity
// check, which says what it did not re-read.
func TestReportComplianceFromSnapshotEqualsFullFold(t *testing.T) {
	port := freePort(t)
	startNATS(t, t.TempDir(), port)
	natsURL := "nats://127.0.0.1:" + strconv.Itoa(port)
	in := start(t, withNATS(natsURL))
	ctx := context.Background()
	someTraffic(t, in, "before")
	if err := in.node.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	in.clock.Advance(26 * time.Hour)
	someTraffic(t, in, "tail")
	if _, err := in.node.Checkpointer.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(t.TempDir(), "checkpoint.pub")
	if err := os.WriteFile(pub, []byte(in.vkey), 0o600); err != nil {
		t.Fatal(err)
	}
	fromSnapshot, full := reportFromSnapshotEqualsFull(t, "--nats-url", natsURL, "--pubkey", pub)
	if fromSnapshot.Status != "WARN" || !strings.Contains(fromSnapshot.Summary, "answered from the snapshot") {
		t.Fatalf("integrity from a snapshot: %+v", fromSnapshot)
	}
	if full.Status != "PASS" {
		t.Fatalf("integrity of the full fold: %+v", full)
	}
}

// TestAuditIdentityReportsFromSnapshot: the subscribe-only audit nkey an
// auditor is given reads the snapshot bucket, so report compliance against
// a running deployment answers from the newest snapshot and its tail (it
// folded the whole ledger before: 99.6 s at 578 k events), and cannot write
// a snapshot. A forged message in the tail fails the integrity check from
// the snapshot as it does in a full fold, and is not applied.
func TestAuditIdentityReportsFromSnapshot(t *testing.T) {
	in := start(t, withNATSListen())
	ctx := context.Background()
	someTraffic(t, in, "before")
	if err := in.node.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	forgeUnsigned(t, in)
	someTraffic(t, in, "tail")
	if _, err := in.node.Checkpointer.Checkpoint(ctx); err != nil { // names the writer, so the CLI trusts its snapshot
		t.Fatal(err)
	}
	pub := filepath.Join(t.TempDir(), "checkpoint.pub")
	if err := os.WriteFile(pub, []byte(in.vkey), 0o600); err != nil {
		t.Fatal(err)
	}
	fromSnapshot, full := reportFromSnapshotEqualsFull(t, "--nats-url", in.backend.ClientURL(), "--nats-creds", in.backend.AuditSeedFile(), "--pubkey", pub)
	for how, c := range map[string]compliance.Check{"from the snapshot": fromSnapshot, "full": full} {
		if c.Status != "FAIL" || !strings.Contains(c.Summary, "1 ledger messages quarantined") {
			t.Errorf("integrity %s with a forged message in the tail: %+v", how, c)
		}
	}

	auth, err := nats.NkeyOptionFromSeed(in.backend.AuditSeedFile())
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(in.backend.ClientURL(), auth)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	store, err := snapshot.OpenExisting(ctx, nc, "")
	if err != nil {
		t.Fatalf("the audit identity cannot open the snapshot bucket: %v", err)
	}
	put, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := store.PutRaw(put, snapshot.Name(1<<40), []byte("forged")); err == nil {
		t.Fatal("the audit identity stored a snapshot")
	}
}

// reportFromSnapshotEqualsFull runs report compliance with args, from the
// newest snapshot and with --full, checks that the two reports agree but
// for the integrity check, and returns the two integrity checks.
func reportFromSnapshotEqualsFull(t *testing.T, args ...string) (fromSnapshot, full compliance.Check) {
	t.Helper()
	report := func(extra ...string) compliance.Report {
		t.Helper()
		file := filepath.Join(t.TempDir(), "report.json") // stdout only: a quarantine's alarm goes to stderr
		code, out := cli(t, append(append([]string{"report", "compliance", "--format", "json", "--out", file}, args...), extra...)...)
		data, err := os.ReadFile(file)
		var rep compliance.Report
		if code != 0 || err != nil || json.Unmarshal(data, &rep) != nil {
			t.Fatalf("report compliance %v: %d %v %s", extra, code, err, out)
		}
		return rep
	}
	snap, all := report(), report("--full")
	integrity := func(r compliance.Report) compliance.Check {
		for _, c := range r.Checks {
			if c.ID == "audit-integrity" {
				return c
			}
		}
		t.Fatal("no integrity check")
		return compliance.Check{}
	}
	notIntegrity := cmpopts.IgnoreSliceElements(func(c compliance.Check) bool { return c.ID == "audit-integrity" })
	if diff := cmp.Diff(all, snap, notIntegrity, cmpopts.IgnoreFields(compliance.Report{}, "GeneratedAt")); diff != "" {
		t.Fatalf("report from the snapshot differs from the full fold (-full +snapshot):\n%s", diff)
	}
	if snap.Events == 0 || len(snap.Usage) == 0 {
		t.Fatalf("an empty report: %+v", snap)
	}
	return integrity(snap), integrity(all)
}

// forgeUnsigned stores, with keyledger's own (stolen) NATS credentials, an
// unsigned GrantCreated linked to the ledger's head: a message every reader
// must quarantine.
func forgeUnsigned(t *testing.T, in *instance) {
	t.Helper()
	ctx := context.Background()
	stolen, err := nats.NkeyOptionFromSeed(filepath.Join(in.dir, "jetstream", embedded.KeyledgerSeedFile))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(in.backend.ClientURL(), stolen)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	stream, err := js.Stream(ctx, "KEYLEDGER")
	if err != nil {
		t.Fatal(err)
	}
	head := in.node.Ledger.Head()
	last, err := stream.GetMsg(ctx, head.Seq)
	if err != nil {
		t.Fatal(err)
	}
	lines, _ := event.SplitBatch(last.Data)
	ev := &event.Event{Index: head.Index + 1, Prev: event.Of(lines[len(lines)-1]), Time: in.clock.Now(), Operation: "CreateGrant",
		Account: testAccount, Region: testRegion, KeyID: "forged",
		Body: &event.GrantCreated{GrantID: "forged", GranteePrincipal: carolARN, Operations: []string{"Decrypt"}, TokenHash: "x"}}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m := &nats.Msg{Subject: "keyledger.events", Data: append(ev.AppendEncoded(nil), '\n')}
	if _, err := js.PublishMsg(ctx, m, jetstream.WithExpectLastSequence(info.State.LastSeq)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for in.node.Ledger.Quarantined() == 0 { // the instance follows past it before writing on
		if time.Now().After(deadline) {
			t.Fatal("the instance did not quarantine the forged message")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
