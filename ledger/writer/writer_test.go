package writer

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestSignatureBindsBytesAndPlace(t *testing.T) {
	k := Generate()
	data := []byte(`{"v":1}` + "\n")
	sig := k.Sign(7, data)
	if !Verify(k.Public(), 7, data, sig) {
		t.Fatal("a good signature does not verify")
	}
	if Verify(k.Public(), 8, data, sig) {
		t.Fatal("a signature verifies at another stream sequence")
	}
	if Verify(k.Public(), 7, []byte(`{"v":2}`+"\n"), sig) {
		t.Fatal("a signature verifies over other bytes")
	}
	if Verify(Generate().Public(), 7, data, sig) {
		t.Fatal("a signature verifies under another key")
	}
}

func TestChainSignatureBindsChainPlaceAndBytes(t *testing.T) {
	k := Generate()
	data := []byte(`{"v":1}` + "\n")
	sig := k.SignAt("w.ab", 7, data)
	if !VerifyAt(k.Public(), "w.ab", 7, data, sig) {
		t.Fatal("a good signature does not verify")
	}
	for _, c := range []struct {
		chain string
		prev  uint64
		data  []byte
	}{
		{"w.ab", 8, data},                     // another place on the chain
		{"c.7", 7, data},                      // another chain
		{"w.a", 7, data},                      // a prefix of the chain name
		{"w.ab", 7, []byte(`{"v":2}` + "\n")}, // other bytes
	} {
		if VerifyAt(k.Public(), c.chain, c.prev, c.data, sig) {
			t.Errorf("the signature verifies for %q after %d over %q", c.chain, c.prev, c.data)
		}
	}
	// Neither kind of signature passes as the other.
	if Verify(k.Public(), 7, data, sig) || VerifyAt(k.Public(), "", 7, data, k.Sign(7, data)) {
		t.Fatal("a v1 and a v2 signature are interchangeable")
	}
}

func TestLoadOrCreateKeepsTheKeyPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "writer.key")
	k, created, err := LoadOrCreate(path)
	if err != nil || !created {
		t.Fatal(created, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v %v", st.Mode(), err)
	}
	again, created, err := LoadOrCreate(path)
	if err != nil || created || again.ID() != k.ID() {
		t.Fatalf("reloaded %v %v %v", again, created, err)
	}
	seed, _ := os.ReadFile(path)
	if out := fmt.Sprintf("%v %+v %s", k, k, k); bytes.Contains([]byte(out), bytes.TrimSpace(seed)) {
		t.Fatal("the key prints its seed")
	}
}

// BenchmarkSign is the writer's cost per group commit: a batch of 64
// events of ~600 bytes, what `make bench`'s 64 connections produce.
func BenchmarkSign(b *testing.B) {
	k := Generate()
	data := bytes.Repeat([]byte(`{"v":1,"index":1,"prev":"0000000000000000000000000000000000000000000000000000000000000000","op":"Encrypt"}`+"\n"), 64*600/100)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		k.Sign(1, data)
	}
}
