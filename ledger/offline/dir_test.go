package offline

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/writer"
)

// signedExport writes into a new directory n events in single-event
// messages signed by a writer the first event registers, their writer
// signatures, and a checkpoint of all of them naming the writers named
// (default: that writer). It returns the directory and the verifier key.
func signedExport(t *testing.T, n int, named map[string]string) (string, string) {
	t.Helper()
	w := writer.Generate()
	if named == nil {
		named = map[string]string{w.ID(): w.PublicText()}
	}
	var events, sigs []byte
	var prev event.Hash
	var tree merkle.Tree
	for i := range n {
		e := &event.Event{Index: uint64(i), Prev: prev, Time: time.Unix(int64(i), 0).UTC(), Operation: "Encrypt", Body: &event.APICall{}}
		if i == 0 {
			e.Operation, e.Body = "RegisterWriter", &event.WriterRegistered{WriterID: w.ID(), PublicKey: w.PublicText(), RegisteredBy: w.ID()}
		}
		raw := e.AppendEncoded(nil)
		prev = event.Of(raw)
		tree.Append(raw)
		data := append(append([]byte(nil), raw...), '\n')
		events = append(events, data...)
		seq := uint64(i + 1)
		line, _ := json.Marshal(MessageSignature{Seq: seq, Events: 1, Writer: w.ID(),
			Signature: base64.StdEncoding.EncodeToString(w.Sign(seq, data))})
		sigs = append(append(sigs, line...), '\n')
	}
	skey, vkey, _ := note.GenerateKey(rand.Reader, "keyledger.test")
	signer, _ := note.NewSigner(skey)
	root, _ := tree.Root(int64(n))
	signed, err := merkle.Sign(merkle.Checkpoint{Origin: "keyledger.test", Size: int64(n), Root: root,
		Extensions: merkle.WriterLines(named)}, signer)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, b := range map[string][]byte{EventsFile: events, SignaturesFile: sigs, CheckpointFile: signed} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, vkey
}

// VerifyDir accepts an intact signed export and refuses one whose writer
// signatures were dropped or changed, or whose checkpoint names a writer
// the exported ledger does not register; a file it cannot read is a
// *fs.PathError, not a verdict.
func TestVerifyDir(t *testing.T) {
	dir, vkey := signedExport(t, 4, nil)
	res, err := VerifyDir(dir, vkey)
	if err != nil || res.Events != 4 || res.Writers == nil || res.Writers.Messages != 4 {
		t.Fatalf("VerifyDir(intact) = %+v, %v", res, err)
	}

	for _, tc := range []struct {
		name   string
		change func(dir string)
		named  map[string]string
		want   func(error) bool
	}{
		{name: "signatures dropped", change: func(dir string) { os.Remove(filepath.Join(dir, SignaturesFile)) },
			want: func(err error) bool { return errors.Is(err, ErrUnsigned) }},
		{name: "a signature changed", change: func(dir string) {
			p := filepath.Join(dir, SignaturesFile)
			b, _ := os.ReadFile(p)
			lines := bytes.SplitAfter(b, []byte("\n"))
			var ms MessageSignature
			json.Unmarshal(lines[1], &ms)
			ms.Signature = base64.StdEncoding.EncodeToString(make([]byte, 64))
			line, _ := json.Marshal(ms)
			lines[1] = append(line, '\n')
			os.WriteFile(p, bytes.Join(lines, nil), 0o644)
		}, want: func(err error) bool { return errors.As(err, new(*WriterError)) }},
		{name: "checkpoint names an unregistered writer", named: map[string]string{"0123456789abcdef0123456789abcdef": "AAAA"},
			want: func(err error) bool { return errors.As(err, new(*WriterError)) }},
		{name: "no checkpoint", change: func(dir string) { os.Remove(filepath.Join(dir, CheckpointFile)) },
			want: func(err error) bool { return errors.As(err, new(*fs.PathError)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, vkey := signedExport(t, 4, tc.named)
			if tc.change != nil {
				tc.change(dir)
			}
			if _, err := VerifyDir(dir, vkey); !tc.want(err) {
				t.Fatalf("VerifyDir = %v", err)
			}
		})
	}

	// An export from before writers signed: no signatures, and a
	// checkpoint naming none.
	dir, vkey = signedExport(t, 3, map[string]string{})
	os.Remove(filepath.Join(dir, SignaturesFile))
	if res, err := VerifyDir(dir, vkey); err != nil || res.Writers != nil || res.Events != 3 {
		t.Fatalf("VerifyDir(unsigned, legacy) = %+v, %v", res, err)
	}
}
