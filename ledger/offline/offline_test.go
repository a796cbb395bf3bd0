package offline

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
)

// export returns n linked events as EventsFile holds them, and a checkpoint
// of the first covered events signed with a fresh key and its verifier key.
func export(t *testing.T, n, covered int) (lines [][]byte, signed []byte, vkey string) {
	t.Helper()
	var prev event.Hash
	var tree merkle.Tree
	for i := range n {
		e := &event.Event{Index: uint64(i), Prev: prev, Time: time.Unix(int64(i), 0), Operation: "Encrypt", Body: &event.APICall{}}
		raw := e.AppendEncoded(nil)
		prev = event.Of(raw)
		lines = append(lines, raw)
		if i < covered {
			if err := tree.Append(raw); err != nil {
				t.Fatal(err)
			}
		}
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, "keyledger.test")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	root, err := tree.Root(int64(covered))
	if err != nil {
		t.Fatal(err)
	}
	signed, err = merkle.Sign(merkle.Checkpoint{Origin: "keyledger.test", Size: int64(covered), Root: root}, signer)
	if err != nil {
		t.Fatal(err)
	}
	return lines, signed, vkey
}

func join(lines [][]byte) []byte { return append(bytes.Join(lines, []byte("\n")), '\n') }

func TestVerifyIntact(t *testing.T) {
	lines, signed, vkey := export(t, 5, 4)
	res, err := Verify(join(lines), signed, vkey)
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 5 || res.Checkpoint.Size != 4 || res.Uncovered() != 1 {
		t.Fatalf("result %+v, uncovered %d", res, res.Uncovered())
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	lines, signed, vkey := export(t, 6, 6)
	changed := bytes.Replace(lines[2], []byte("Encrypt"), []byte("Decrypt"), 1)
	tests := map[string][][]byte{
		"changed event": {lines[0], lines[1], changed, lines[3], lines[4], lines[5]},
		"dropped event": {lines[0], lines[1], lines[3], lines[4], lines[5]},
		"reordered":     {lines[0], lines[2], lines[1], lines[3], lines[4], lines[5]},
		"truncated":     lines[:4],
		"changed tail":  {lines[0], lines[1], lines[2], lines[3], lines[4], bytes.Replace(lines[5], []byte("Encrypt"), []byte("Decrypt"), 1)},
	}
	for name, got := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := Verify(join(got), signed, vkey); err == nil {
				t.Fatal("verified")
			}
		})
	}
	var linkErr *LinkError
	if _, err := Verify(join(tests["dropped event"]), signed, vkey); !errors.As(err, &linkErr) || linkErr.Line != 3 {
		t.Fatalf("dropped event: %v, want a broken link at line 3", err)
	}
}

func TestVerifyChecksTheSignature(t *testing.T) {
	lines, signed, _ := export(t, 3, 3)
	_, _, otherVkey := export(t, 1, 1)
	var sigErr *SignatureError
	if _, err := Verify(join(lines), signed, otherVkey); !errors.As(err, &sigErr) {
		t.Fatalf("another key: %v, want a *SignatureError", err)
	}
}
