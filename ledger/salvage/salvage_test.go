package salvage_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/checkpoint"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/internal/blockfile"
	"github.com/keyledger/keyledger/ledger/internal/ledgertest"
	"github.com/keyledger/keyledger/ledger/offline"
	. "github.com/keyledger/keyledger/ledger/salvage"
	"github.com/keyledger/keyledger/ledger/writer"
)

// damagedLedger is a 600-event ledger of single-event messages with
// checkpoints at 100, 300 and 600 events, whose message at stream
// sequence lostSeq has 16 bytes flipped in its block file (0: none).
func damagedLedger(t *testing.T, lostSeq int) *ledgertest.Ledger {
	t.Helper()
	f := ledgertest.New(t, ledger.Config{}, 600)
	cps, err := checkpoint.Open(context.Background(), f.NC, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{100, 300, 600} {
		if err := cps.Put(context.Background(), f.Checkpoint(n, nil)); err != nil {
			t.Fatal(err)
		}
	}
	if lostSeq > 0 {
		blk := filepath.Join(blockfile.MsgsDir(f.StoreDir, "KEYLEDGER"), "1.blk")
		raw, err := os.ReadFile(blk)
		if err != nil {
			t.Fatal(err)
		}
		at := bytes.Index(raw, f.Recs[lostSeq-1].Raw)
		if at < 0 {
			t.Fatal("the event is not in the block file as stored")
		}
		for i := at + 10; i < at+26; i++ {
			raw[i] ^= 0xff
		}
		if err := os.WriteFile(blk, raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func TestSalvageIntact(t *testing.T) {
	f := damagedLedger(t, 0)
	dir := filepath.Join(t.TempDir(), "out")
	rep, err := Salvage(context.Background(), Request{StoreDir: f.StoreDir, Dir: dir, VerifierKey: f.Vkey})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Complete() || rep.Events != 600 || rep.Checkpoints.Verified != 3 || rep.Checkpoints.NewestSize != 600 {
		t.Fatalf("intact ledger: %+v\n%s", rep, rep.Summary())
	}
	// The export is the offline form: it verifies whole.
	res, err := offline.VerifyDir(dir, f.Vkey)
	if err != nil {
		t.Fatalf("offline verification of an intact salvage: %v", err)
	}
	t.Logf("%+v", res)
}

// TestSalvageAroundAGap: one message lost in the middle. Every other event
// is saved byte for byte, the loss and the break are named, the chain is
// not relinked (offline verification stops at the gap), and only the
// checkpoint before the gap verifies.
func TestSalvageAroundAGap(t *testing.T) {
	f := damagedLedger(t, 200) // stream sequence 200 holds event index 199
	dir := filepath.Join(t.TempDir(), "out")
	rep, err := Salvage(context.Background(), Request{StoreDir: f.StoreDir, Dir: dir, VerifierKey: f.Vkey})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep.Summary())
	if len(rep.Lost) != 1 || rep.Lost[0].FromSeq != 200 || rep.Lost[0].ToSeq != 200 ||
		rep.Lost[0].FromIndex != 199 || rep.Lost[0].ToIndex != 199 || !strings.Contains(rep.Lost[0].Blocks, "1.blk") {
		t.Fatalf("lost: %+v", rep.Lost)
	}
	if len(rep.Breaks) != 1 || rep.Breaks[0].Seq != 201 || rep.Breaks[0].Index != 200 ||
		rep.Breaks[0].NamesPrev != f.Recs[199].Hash.String() || rep.Breaks[0].AfterHash != f.Recs[198].Hash.String() {
		t.Fatalf("breaks: %+v", rep.Breaks)
	}
	c := rep.Checkpoints
	if c.Verified != 1 || c.NewestSize != 100 || c.BeyondGap != 2 || c.PrefixSize != 199 || c.Mismatch != 0 {
		t.Fatalf("checkpoints: %+v", c)
	}
	events, _ := os.ReadFile(filepath.Join(dir, offline.EventsFile))
	var want []byte
	for i, r := range f.Recs {
		if i != 199 {
			want = append(append(want, r.Raw...), '\n')
		}
	}
	if !bytes.Equal(events, want) {
		t.Fatal("the saved events are not every event but the lost one, byte for byte")
	}
	// Never relinked: offline verification names the gap.
	_, err = offline.VerifyDir(dir, f.Vkey)
	var le *offline.LinkError
	if !errors.As(err, &le) || le.Line != 200 {
		t.Fatalf("offline verification of the salvage: %v, want the chain broken at line 200", err)
	}
	var onDisk Report
	js, _ := os.ReadFile(filepath.Join(dir, ReportFile))
	if err := json.Unmarshal(js, &onDisk); err != nil || len(onDisk.Lost) != 1 {
		t.Fatalf("%s: %v %s", ReportFile, err, js)
	}
}

// TestSalvageWithoutVerifierKey: no checkpoint is trusted, nothing is
// claimed verified, and the writers after the gap are those registered
// before it.
func TestSalvageWithoutVerifierKey(t *testing.T) {
	f := damagedLedger(t, 50)
	rep, err := Diagnose(context.Background(), f.StoreDir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Checkpoints.Verified != 0 || rep.Events != 599 || len(rep.Quarantined) != 0 {
		t.Fatalf("%+v", rep)
	}
}

func TestSalvageRefusesNonEmptyDir(t *testing.T) {
	f := damagedLedger(t, 0)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x"), nil, 0o600)
	if _, err := Salvage(context.Background(), Request{StoreDir: f.StoreDir, Dir: dir}); err == nil {
		t.Fatal("salvaged into a non-empty directory")
	}
}

// TestSalvageLosesTheTail: damage after the last record read loses the
// stream's tail; how much is not known from the blocks, and the newest
// checkpoint, which covers it, cannot be checked.
func TestSalvageLosesTheTail(t *testing.T) {
	f := damagedLedger(t, 600)
	rep, err := Diagnose(context.Background(), f.StoreDir, "", f.Vkey)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep.Summary())
	if len(rep.Lost) != 1 || rep.Lost[0].FromSeq != 600 || rep.Lost[0].ToSeq != 0 || rep.Lost[0].FromIndex != 599 ||
		!strings.Contains(rep.Lost[0].String(), "to the end") || len(rep.Breaks) != 0 {
		t.Fatalf("lost %+v breaks %+v", rep.Lost, rep.Breaks)
	}
	if c := rep.Checkpoints; c.Verified != 2 || c.BeyondGap != 1 || c.LargestSize != 600 {
		t.Fatalf("checkpoints: %+v", c)
	}
}

// TestSalvageSeveralChains: two writers, each on its own data chain; a
// message of the second is lost. The first writer's chain goes on
// unbroken across the gap, the second's is reported broken where it lost
// the event, and positions after the gap count the lost event.
func TestSalvageSeveralChains(t *testing.T) {
	f := ledgertest.New(t, ledger.Config{}, 2)
	ctx := context.Background()
	wb := writer.Generate()
	f.Append(&event.Event{Time: ledgertest.At(2), Operation: "RegisterWriter",
		Body: &event.WriterRegistered{WriterID: wb.ID(), PublicKey: wb.PublicText(), RegisteredBy: f.Writer.ID()}})
	lb, err := ledger.Open(ctx, f.NC, ledger.Config{Writer: wb, Logger: f.Config.Logger})
	if err != nil {
		t.Fatal(err)
	}
	head, err := lb.Replay(ctx, chain.Head{}, func(event.Record) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	lb.Start(head)
	t.Cleanup(lb.Close)
	all := append([]event.Record(nil), f.Recs...)
	var lost event.Record
	for i := 3; i < 63; i++ {
		ev := &event.Event{Time: ledgertest.At(i), Operation: "Encrypt", Account: "111122223333", KeyID: "k", Body: &event.APICall{}}
		if i%2 == 0 {
			all = append(all, f.Append(ev))
			continue
		}
		r, err := lb.Append(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, r)
		if i == 31 {
			lost = r
		}
	}
	blk := filepath.Join(blockfile.MsgsDir(f.StoreDir, "KEYLEDGER"), "1.blk")
	raw, err := os.ReadFile(blk)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(raw, lost.Raw)
	if at < 0 {
		t.Fatal("the event is not in the block file as stored")
	}
	for i := at + 10; i < at+26; i++ {
		raw[i] ^= 0xff
	}
	if err := os.WriteFile(blk, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "out")
	rep, err := Salvage(ctx, Request{StoreDir: f.StoreDir, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep.Summary())
	if len(rep.Lost) != 1 || rep.Lost[0].FromSeq != lost.Seq || rep.Lost[0].ToSeq != lost.Seq || !rep.Lost[0].PerChain {
		t.Fatalf("lost: %+v", rep.Lost)
	}
	if len(rep.Breaks) != 1 || rep.Breaks[0].Chain != chain.DataChain(wb.ID()) || rep.Breaks[0].Index != lost.Event.Index+1 ||
		rep.Breaks[0].NamesPrev != lost.Hash.String() || len(rep.Quarantined) != 0 {
		t.Fatalf("breaks: %+v, refused %+v", rep.Breaks, rep.Quarantined)
	}
	if rep.Events != len(all)-1 || rep.LastIndex != uint64(len(all)-1) {
		t.Fatalf("saved %d events up to position %d, want %d up to %d", rep.Events, rep.LastIndex, len(all)-1, len(all)-1)
	}
	events, _ := os.ReadFile(filepath.Join(dir, offline.EventsFile))
	var want []byte
	for _, r := range all {
		if r.Seq != lost.Seq {
			want = append(append(want, r.Raw...), '\n')
		}
	}
	if !bytes.Equal(events, want) {
		t.Fatal("the saved events are not every event but the lost one, byte for byte")
	}
}
