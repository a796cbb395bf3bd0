package segment

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/offline"
	"github.com/keyledger/keyledger/ledger/writer"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

const perMessage = 3

// testLedger is a ledger of signed messages of three events each, one
// event an hour, and its whole Merkle tree.
type testLedger struct {
	lines  [][]byte
	hashes []event.Hash
	sigs   []offline.MessageSignature
	tree   merkle.MemTree
	w      *writer.Key
	signer note.Signer
	vkey   string
}

func newTestLedger(t *testing.T, messages int) *testLedger {
	t.Helper()
	l := &testLedger{w: writer.Generate()}
	var prev event.Hash
	for m := range messages {
		var data []byte
		for j := range perMessage {
			i := m*perMessage + j
			var body event.Body = &event.APICall{}
			if i == 0 {
				body = &event.WriterRegistered{WriterID: l.w.ID(), PublicKey: l.w.PublicText(), RegisteredBy: l.w.ID()}
			}
			e := &event.Event{Index: uint64(i), Prev: prev, Time: t0.Add(time.Duration(i) * time.Hour), Operation: "Encrypt", Body: body}
			raw := e.AppendEncoded(nil)
			prev = event.Of(raw)
			l.lines, l.hashes = append(l.lines, raw), append(l.hashes, prev)
			if err := l.tree.Append(raw); err != nil {
				t.Fatal(err)
			}
			data = append(append(data, raw...), '\n')
		}
		seq := uint64(m + 1)
		l.sigs = append(l.sigs, offline.MessageSignature{Seq: seq, Events: perMessage, Writer: l.w.ID(),
			Signature: base64.StdEncoding.EncodeToString(l.w.Sign(seq, data))})
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, "keyledger.test")
	if err != nil {
		t.Fatal(err)
	}
	if l.signer, err = note.NewSigner(skey); err != nil {
		t.Fatal(err)
	}
	l.vkey = vkey
	return l
}

func (l *testLedger) checkpoint(t *testing.T, size int) []byte {
	t.Helper()
	root, err := l.tree.Root(int64(size))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := merkle.Sign(merkle.Checkpoint{Origin: "keyledger.test", Size: int64(size), Root: root}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func (l *testLedger) files(from, to int) (events, sigs []byte) {
	events = append(bytes.Join(l.lines[from:to], []byte("\n")), '\n')
	for _, s := range l.sigs[from/perMessage : to/perMessage] {
		b, _ := json.Marshal(s)
		sigs = append(append(sigs, b...), '\n')
	}
	return events, sigs
}

func (l *testLedger) base(t *testing.T, n int) Base {
	t.Helper()
	if n == 0 {
		return Base{}
	}
	b, err := At(&l.tree, uint64(n), l.hashes[n-1], map[string]string{l.w.ID(): l.w.PublicText()}, uint64(n/perMessage), nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// archive writes events [from, to) as an archive with a checkpoint of size cp.
func (l *testLedger) archive(t *testing.T, from, to, cp int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "archive")
	events, sigs := l.files(from, to)
	proof, err := l.tree.Consistency(int64(to), int64(cp))
	if err != nil {
		t.Fatal(err)
	}
	m := Manifest{Ledger: "KEYLEDGER", Base: l.base(t, from), Next: l.base(t, to),
		Before: t0.Add(time.Duration(to) * time.Hour), FirstTime: t0.Add(time.Duration(from) * time.Hour),
		LastTime: t0.Add(time.Duration(to-1) * time.Hour)}
	if err := Write(dir, Contents{Manifest: m, Events: events, Signatures: sigs, Checkpoint: l.checkpoint(t, cp), Proof: proof}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// live writes an export of events [from, end) as `audit export` does after
// the events before from were removed.
func (l *testLedger) live(t *testing.T, from int) string {
	t.Helper()
	dir := t.TempDir()
	events, sigs := l.files(from, len(l.lines))
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(offline.EventsFile, events)
	write(offline.SignaturesFile, sigs)
	write(offline.CheckpointFile, l.checkpoint(t, len(l.lines)))
	if from > 0 {
		b, _ := json.Marshal(l.base(t, from))
		write(BaseFile, b)
	}
	return dir
}

func TestArchivesJoinTheLiveLedger(t *testing.T) {
	l := newTestLedger(t, 20) // 60 events
	a1 := l.archive(t, 0, 21, 30)
	a2 := l.archive(t, 21, 33, 33)
	archives, err := OpenAll([]string{a1, a2}, l.vkey)
	if err != nil {
		t.Fatal(err)
	}
	j, err := VerifyJoined(archives, l.live(t, 33), l.vkey)
	if err != nil {
		t.Fatal(err)
	}
	if j.Archived != 33 || j.Live != 27 {
		t.Fatalf("archived %d live %d, want 33 and 27", j.Archived, j.Live)
	}
	// One archive joins an export that starts after it.
	if _, err := VerifyJoined(archives[:1], l.live(t, 21), l.vkey); err != nil {
		t.Fatal(err)
	}
	// So does an export of the whole ledger taken before the removal.
	if _, err := VerifyJoined(archives, l.live(t, 0), l.vkey); err != nil {
		t.Fatal(err)
	}
	// An export that does not start where the archives end does not join.
	if _, err := VerifyJoined(archives[:1], l.live(t, 33), l.vkey); err == nil {
		t.Fatal("an export after a gap joined the archive")
	}
	// Archives must come in order, from the ledger's first event.
	if _, err := OpenAll([]string{a2}, l.vkey); err == nil {
		t.Fatal("an archive that does not start the ledger verified alone as its start")
	}
}

func TestArchiveTamperingIsCaught(t *testing.T) {
	l := newTestLedger(t, 10)
	other, _, err := note.GenerateKey(rand.Reader, "keyledger.test")
	if err != nil {
		t.Fatal(err)
	}
	forger, _ := note.NewSigner(other)
	edit := func(name string, fn func([]byte) []byte) func(dir string) {
		return func(dir string) {
			p := filepath.Join(dir, name)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, fn(b), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	lines := func(fn func([][]byte) [][]byte) func([]byte) []byte {
		return func(b []byte) []byte {
			ls := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
			return append(bytes.Join(fn(ls), []byte("\n")), '\n')
		}
	}
	for _, tc := range []struct {
		name   string
		tamper func(dir string)
	}{
		{"changed event", edit(offline.EventsFile, func(b []byte) []byte { return bytes.Replace(b, []byte(`"Encrypt"`), []byte(`"Decrypt"`), 1) })},
		{"changed event, digest refreshed", func(dir string) {
			edit(offline.EventsFile, func(b []byte) []byte { return bytes.Replace(b, []byte(`"Encrypt"`), []byte(`"Decrypt"`), 1) })(dir)
			rewriteDigest(t, dir)
		}},
		{"dropped event, digest refreshed", func(dir string) {
			edit(offline.EventsFile, lines(func(ls [][]byte) [][]byte { return append(ls[:4:4], ls[5:]...) }))(dir)
			rewriteDigest(t, dir)
		}},
		{"dropped last message, manifest rewritten", func(dir string) {
			edit(offline.EventsFile, lines(func(ls [][]byte) [][]byte { return ls[:len(ls)-perMessage] }))(dir)
			edit(offline.SignaturesFile, lines(func(ls [][]byte) [][]byte { return ls[:len(ls)-1] }))(dir)
			m := readManifest(t, dir)
			m.Next = l.base(t, 12-perMessage)
			m.LastTime = t0.Add(8 * time.Hour)
			writeManifest(t, dir, m)
			rewriteDigest(t, dir)
		}},
		{"forged checkpoint", func(dir string) {
			root, _ := l.tree.Root(15)
			signed, _ := merkle.Sign(merkle.Checkpoint{Origin: "keyledger.test", Size: 15, Root: root}, forger)
			os.WriteFile(filepath.Join(dir, offline.CheckpointFile), signed, 0o644)
		}},
		{"checkpoint of another tree", func(dir string) {
			signed, _ := merkle.Sign(merkle.Checkpoint{Origin: "keyledger.test", Size: 15, Root: l.hashesRoot()}, l.signer)
			os.WriteFile(filepath.Join(dir, offline.CheckpointFile), signed, 0o644)
		}},
		{"consistency proof changed", edit(ProofFile, func(b []byte) []byte { return bytes.Replace(b, b[:4], []byte("AAAA"), 1) })},
		{"signature dropped", edit(offline.SignaturesFile, lines(func(ls [][]byte) [][]byte { return ls[1:] }))},
		{"manifest cut moved before its events", func(dir string) {
			m := readManifest(t, dir)
			m.Before = t0
			writeManifest(t, dir, m)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := l.archive(t, 0, 12, 15)
			if _, err := Open(dir, l.vkey); err != nil {
				t.Fatalf("intact archive: %v", err)
			}
			tc.tamper(dir)
			a, err := Open(dir, l.vkey)
			if err == nil {
				// Some edits leave a self-consistent archive that cannot
				// join the live ledger; that must then be refused.
				if _, err = VerifyJoined([]Archive{a}, l.live(t, 12), l.vkey); err == nil {
					t.Fatal("a tampered archive verified and joined the live ledger")
				}
			}
		})
	}
}

// hashesRoot is a root that is no root of the test ledger's tree.
func (l *testLedger) hashesRoot() (h [32]byte) { copy(h[:], l.hashes[0][:]); return h }

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, _ := os.ReadFile(p)
	return b
}

func readManifest(t *testing.T, dir string) Manifest {
	t.Helper()
	var m Manifest
	if err := json.Unmarshal(mustRead(t, filepath.Join(dir, ManifestFile)), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func writeManifest(t *testing.T, dir string, m Manifest) {
	t.Helper()
	b, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(dir, ManifestFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func rewriteDigest(t *testing.T, dir string) {
	t.Helper()
	m := readManifest(t, dir)
	events := mustRead(t, filepath.Join(dir, offline.EventsFile))
	m.EventsSHA256 = sha256Hex(events)
	writeManifest(t, dir, m)
}

func TestRemovalChecks(t *testing.T) {
	l := newTestLedger(t, 10)
	a, err := Open(l.archive(t, 0, 12, 30), l.vkey)
	if err != nil {
		t.Fatal(err)
	}
	hashAt := func(i uint64) (string, uint64, error) {
		return l.base(t, int(i)+1).Prev, (i + 1 + perMessage - 1) / perMessage, nil
	}
	ok := Removal{Archive: a, Live: Base{}, HashAt: hashAt, Now: t0.Add(DefaultRetention + 12*time.Hour), Retention: DefaultRetention}
	if err := ok.Check(); err != nil {
		t.Fatalf("a removal past the retention with its archive: %v", err)
	}
	young := ok
	young.Now = t0.Add(DefaultRetention)
	if err := young.Check(); !errors.Is(err, ErrRetention) {
		t.Fatalf("removal inside the retention: %v, want ErrRetention", err)
	}
	if !strings.Contains(young.Check().Error(), "removable from") {
		t.Fatalf("the refusal does not say when: %v", young.Check())
	}
	moved := ok
	moved.Live = l.base(t, 3)
	if err := moved.Check(); !errors.Is(err, ErrNotArchive) {
		t.Fatalf("archive not starting at the live base: %v, want ErrNotArchive", err)
	}
	other := ok
	other.HashAt = func(i uint64) (string, uint64, error) { return "00", 4, nil }
	if err := other.Check(); !errors.Is(err, ErrNotArchive) {
		t.Fatalf("archive of another ledger: %v, want ErrNotArchive", err)
	}
}
