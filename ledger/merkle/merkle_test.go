package merkle

import (
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// TestRFC6962Vectors uses the Certificate Transparency reference test
// leaves and roots (certificate-transparency-go merkletree test data).
func TestRFC6962Vectors(t *testing.T) {
	leaves := []string{"", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"}
	roots := map[int64]string{
		1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
		2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
		3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
		8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
	}
	var tree Tree
	for _, l := range leaves {
		b, _ := hex.DecodeString(l)
		if err := tree.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	for size, want := range roots {
		got, err := tree.Root(size)
		if err != nil || hex.EncodeToString(got[:]) != want {
			t.Fatalf("root(%d) = %x, %v; want %s", size, got, err, want)
		}
	}
}

func TestProofs(t *testing.T) {
	var tree Tree
	var leaves [][]byte
	for i := 0; i < 100; i++ {
		l := []byte(fmt.Sprintf(`{"index":%d}`, i))
		leaves = append(leaves, l)
		tree.Append(l)
	}
	for _, size := range []int64{1, 7, 64, 100} {
		root, _ := tree.Root(size)
		for _, idx := range []int64{0, size / 2, size - 1} {
			p, err := tree.Inclusion(idx, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckRecord(p, size, root, idx, tlog.RecordHash(leaves[idx])); err != nil {
				t.Fatalf("inclusion %d in %d: %v", idx, size, err)
			}
			if err := tlog.CheckRecord(p, size, root, idx, tlog.RecordHash([]byte("forged"))); err == nil {
				t.Fatal("a forged leaf passed the inclusion proof")
			}
		}
	}
	old, _ := tree.Root(37)
	cur, _ := tree.Root(100)
	p, err := tree.Consistency(37, 100)
	if err != nil || tlog.CheckTree(p, 100, cur, 37, old) != nil {
		t.Fatalf("consistency: %v", err)
	}
	if tlog.CheckTree(p, 100, cur, 37, tlog.RecordHash([]byte("x"))) == nil {
		t.Fatal("a forged old root passed")
	}
	if _, err := tree.Inclusion(100, 100); err != ErrRange {
		t.Fatal("out-of-range proof")
	}
	var again Tree
	for _, l := range leaves {
		again.Append(l)
	}
	if whole, _ := again.Root(100); whole != cur {
		t.Fatal("a tree rebuilt from the same leaves differs")
	}
}

func TestCheckpointSignOpen(t *testing.T) {
	dir := t.TempDir()
	signer, vkey, err := LoadOrCreateKey(dir+"/checkpoint.key", "keyledger.example")
	if err != nil {
		t.Fatal(err)
	}
	signer2, vkey2, err := LoadOrCreateKey(dir+"/checkpoint.key", "keyledger.example")
	if err != nil || vkey2 != vkey || signer2.KeyHash() != signer.KeyHash() {
		t.Fatal("reloaded key differs")
	}
	cp := Checkpoint{Origin: "keyledger.example/us-east-1", Size: 42, Root: tlog.RecordHash([]byte("x"))}
	signed, err := Sign(cp, signer)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(signed, vkey)
	if err != nil || got != cp {
		t.Fatalf("Open = %+v, %v", got, err)
	}
	tampered := []byte(strings.Replace(string(signed), "\n42\n", "\n43\n", 1))
	if _, err := Open(tampered, vkey); err == nil {
		t.Fatal("a tampered checkpoint opened")
	}
	_, other, _ := note.GenerateKey(nil, "keyledger.example")
	if _, err := Open(signed, other); err == nil {
		t.Fatal("opened with another key")
	}
}

func TestVerifyCheckpoints(t *testing.T) {
	signer, vkey, err := LoadOrCreateKey(t.TempDir()+"/checkpoint.key", "keyledger.example")
	if err != nil {
		t.Fatal(err)
	}
	var tree Tree
	var signed [][]byte
	for i := range 5 {
		if err := tree.Append([]byte(fmt.Sprintf("event %d", i))); err != nil {
			t.Fatal(err)
		}
		root, _ := tree.Root(tree.Size())
		s, err := Sign(Checkpoint{Origin: "keyledger.example", Size: tree.Size(), Root: root}, signer)
		if err != nil {
			t.Fatal(err)
		}
		signed = append(signed, s)
	}
	if n, err := VerifyCheckpoints(signed, vkey, tree.Root); n != 5 || err != nil {
		t.Fatalf("intact: %d verified, %v", n, err)
	}
	var other Tree // a ledger whose third event differs
	for i := range 5 {
		other.Append([]byte(fmt.Sprintf("event %d", i%3*i)))
	}
	if n, err := VerifyCheckpoints(signed, vkey, other.Root); n != 2 || err == nil {
		t.Fatalf("another ledger: %d verified, %v; want 2 and an error", n, err)
	}
	_, otherKey, _ := note.GenerateKey(nil, "keyledger.example")
	if n, err := VerifyCheckpoints(signed, otherKey, tree.Root); n != 0 || err == nil {
		t.Fatalf("another key: %d verified, %v", n, err)
	}
}

// FuzzAdversarialProofs: a proof the fuzzer builds (hashes, index, size)
// must never prove a leaf that is not in the tree.
func FuzzAdversarialProofs(f *testing.F) {
	var tree Tree
	var leaves [][]byte
	for i := 0; i < 33; i++ {
		l := []byte(fmt.Sprintf("leaf %d", i))
		leaves = append(leaves, l)
		tree.Append(l)
	}
	root, _ := tree.Root(33)
	real, _ := tree.Inclusion(5, 33)
	var seed []byte
	for _, h := range real {
		seed = append(seed, h[:]...)
	}
	f.Add(seed, int64(5), []byte("leaf 5"))
	f.Add(seed, int64(6), []byte("forged"))
	f.Fuzz(func(t *testing.T, proofBytes []byte, index int64, leaf []byte) {
		var proof tlog.RecordProof
		for len(proofBytes) >= 32 {
			var h tlog.Hash
			copy(h[:], proofBytes)
			proof = append(proof, h)
			proofBytes = proofBytes[32:]
		}
		if tlog.CheckRecord(proof, 33, root, index, tlog.RecordHash(leaf)) == nil {
			if index < 0 || index >= 33 || string(leaves[index]) != string(leaf) {
				t.Fatalf("a forged proof verified leaf %q at %d", leaf, index)
			}
		}
	})
}

// TestCheckpointNamesWriters: writer extension lines follow the root, are
// covered by the note signature, survive a round trip, leave a C2SP reader
// that knows no extensions its origin, size and root, and other extension
// lines are kept but not read as writers.
func TestCheckpointNamesWriters(t *testing.T) {
	skey, vkey, err := note.GenerateKey(nil, "keyledger.example")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	writers := map[string]string{"bb": "Ym9i", "aa": "YWxpY2U="}
	cp := Checkpoint{Origin: "keyledger.example/us-east-1", Size: 7, Root: tlog.RecordHash([]byte("y")),
		Extensions: WriterLines(writers) + "other-extension 1\n"}
	want := "keyledger.example/us-east-1\n7\n" + strings.Split(cp.Body(), "\n")[2] +
		"\nkeyledger-writer aa YWxpY2U=\nkeyledger-writer bb Ym9i\nother-extension 1\n"
	if cp.Body() != want {
		t.Fatalf("body:\n%s\nwant:\n%s", cp.Body(), want)
	}
	signed, err := Sign(cp, signer)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(signed, vkey)
	if err != nil || got != cp {
		t.Fatalf("Open = %+v, %v", got, err)
	}
	if diff := fmt.Sprint(got.Writers()); diff != fmt.Sprint(writers) {
		t.Fatalf("writers %v, want %v", got.Writers(), writers)
	}
	// A reader of plain C2SP checkpoints: three lines, extensions ignored.
	n, err := note.Open(signed, note.VerifierList(mustVerifier(t, vkey)))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(n.Text, "\n")
	if lines[0] != cp.Origin || lines[1] != "7" {
		t.Fatalf("plain reader sees %q", lines[:3])
	}
	if _, err := Open([]byte(strings.Replace(string(signed), "keyledger-writer aa", "keyledger-writer ab", 1)), vkey); err == nil {
		t.Fatal("a changed writer line opened")
	}
	if (Checkpoint{Size: 1}).Writers() != nil {
		t.Fatal("a checkpoint without writer lines names writers")
	}
}

func mustVerifier(t *testing.T, vkey string) note.Verifier {
	t.Helper()
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A tree continued from its frontier has the same roots and proofs (for
// indexes past the frontier) as the whole tree.
func TestMemTreeFromFrontier(t *testing.T) {
	leaf := func(i int) []byte { return []byte{byte(i), byte(i >> 8), 'x'} }
	var whole MemTree
	for i := 0; i < 70; i++ {
		if err := whole.Append(leaf(i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, base := range []int64{1, 3, 8, 13, 32, 33, 69} {
		fr, err := whole.Frontier(base)
		if err != nil {
			t.Fatal(err)
		}
		cont, err := NewMemTreeFrom(base, fr)
		if err != nil {
			t.Fatal(err)
		}
		for i := base; i < 70; i++ {
			if err := cont.Append(leaf(int(i))); err != nil {
				t.Fatal(err)
			}
		}
		for size := base; size <= 70; size++ {
			want, _ := whole.Root(size)
			got, err := cont.Root(size)
			if err != nil || got != want {
				t.Fatalf("base %d: root at %d differs: %v", base, size, err)
			}
		}
		root, _ := whole.Root(70)
		for i := base; i < 70; i++ {
			p, err := cont.Inclusion(i, 70)
			if err != nil {
				t.Fatalf("base %d: inclusion of %d: %v", base, i, err)
			}
			if err := tlog.CheckRecord(p, 70, root, i, tlog.RecordHash(leaf(int(i)))); err != nil {
				t.Fatalf("base %d: inclusion of %d does not verify: %v", base, i, err)
			}
		}
		old, _ := whole.Root(base + 1)
		p, err := cont.Consistency(base+1, 70)
		if err != nil {
			t.Fatalf("base %d: consistency: %v", base, err)
		}
		if err := tlog.CheckTree(p, 70, root, base+1, old); err != nil {
			t.Fatalf("base %d: consistency does not verify: %v", base, err)
		}
		if _, err := cont.Inclusion(0, 70); base > 1 && err == nil {
			t.Fatalf("base %d: an inclusion proof inside the removed leaves cannot be made", base)
		}
	}
}

// TestCheckpointNamesRevokedWriters: revoked writers are named apart, never
// among Writers (what an older build reads), and Known is both.
func TestCheckpointNamesRevokedWriters(t *testing.T) {
	cp := Checkpoint{Origin: "o", Size: 1, Extensions: WriterLines(map[string]string{"aa": "YQ=="}) + RevokedLines(map[string]string{"bb": "Yg=="})}
	if want := "keyledger-writer aa YQ==\nkeyledger-revoked-writer bb Yg==\n"; cp.Extensions != want {
		t.Fatalf("extensions %q, want %q", cp.Extensions, want)
	}
	if w, r, k := cp.Writers(), cp.Revoked(), cp.Known(); len(w) != 1 || w["aa"] != "YQ==" || len(r) != 1 || r["bb"] != "Yg==" || len(k) != 2 {
		t.Fatalf("writers %v, revoked %v, known %v", w, r, k)
	}
}
