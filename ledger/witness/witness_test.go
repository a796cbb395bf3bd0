package witness_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/witness"
)

// deployment is a log that signs checkpoints over its own tree, as a
// keyledger deployment does.
type deployment struct {
	tree   merkle.Tree
	signer note.Signer
	origin string
}

func newDeployment(t *testing.T, signer note.Signer, events ...string) *deployment {
	d := &deployment{signer: signer, origin: signer.Name()}
	for _, e := range events {
		if err := d.tree.Append([]byte(e)); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func (d *deployment) Checkpoint(context.Context) ([]byte, error) {
	root, err := d.tree.Root(d.tree.Size())
	if err != nil {
		return nil, err
	}
	return merkle.Sign(merkle.Checkpoint{Origin: d.origin, Size: d.tree.Size(), Root: root}, d.signer)
}

func (d *deployment) Consistency(_ context.Context, oldSize, newSize int64) ([]tlog.Hash, error) {
	return d.tree.Consistency(oldSize, newSize)
}

func events(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(`{"%s":%d}`, prefix, i)
	}
	return out
}

func keys(t *testing.T) (note.Signer, string) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "keyledger-witness-test")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s, vkey
}

func TestCheck(t *testing.T) {
	signer, vkey := keys(t)
	otherSigner, _ := keys(t)
	history := events("e", 40)
	seenAt := func(n int) *witness.Seen {
		s, err := witness.Check(context.Background(), newDeployment(t, signer, history[:n]...), vkey, nil)
		if err != nil {
			t.Fatal(err)
		}
		return &s
	}
	tests := []struct {
		name string
		prev *witness.Seen
		now  *deployment
		want error
	}{
		{"first sight", nil, newDeployment(t, signer, history[:5]...), nil},
		{"grows", seenAt(10), newDeployment(t, signer, history[:40]...), nil},
		{"unchanged", seenAt(10), newDeployment(t, signer, history[:10]...), nil},
		{"from empty", seenAt(0), newDeployment(t, signer, history[:3]...), nil},
		{"rolled back", seenAt(30), newDeployment(t, signer, history[:20]...), witness.ErrRollback},
		{"rewritten, same size", seenAt(10), newDeployment(t, signer, append(events("x", 1), history[1:10]...)...), witness.ErrFork},
		{"rolled back then grown past", seenAt(30), newDeployment(t, signer, append(history[:20:20], events("y", 15)...)...), witness.ErrFork},
		{"forged signature", seenAt(10), newDeployment(t, otherSigner, history[:20]...), witness.ErrSignature},
		{"forged on first sight", nil, newDeployment(t, otherSigner, history[:20]...), witness.ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := witness.Check(context.Background(), tt.now, vkey, tt.prev)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Check = %v, want %v", err, tt.want)
			}
			if err == nil && got.Checkpoint.Size != tt.now.tree.Size() {
				t.Fatalf("remembered size %d, want %d", got.Checkpoint.Size, tt.now.tree.Size())
			}
		})
	}
}

// lyingDeployment serves a grown checkpoint but a proof for another tree.
type lyingDeployment struct{ *deployment }

func (l lyingDeployment) Consistency(ctx context.Context, oldSize, newSize int64) ([]tlog.Hash, error) {
	p, err := l.deployment.Consistency(ctx, oldSize, newSize)
	if len(p) > 0 {
		p[0][0] ^= 1
	}
	return p, err
}

func TestBadProofIsAFork(t *testing.T) {
	signer, vkey := keys(t)
	h := events("e", 20)
	prev, err := witness.Check(context.Background(), newDeployment(t, signer, h[:7]...), vkey, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = witness.Check(context.Background(), lyingDeployment{newDeployment(t, signer, h...)}, vkey, &prev)
	if !errors.Is(err, witness.ErrFork) {
		t.Fatalf("Check = %v, want ErrFork", err)
	}
}

func TestStateFile(t *testing.T) {
	signer, vkey := keys(t)
	_, otherVkey := keys(t)
	path := filepath.Join(t.TempDir(), "witness.state")
	if s, err := witness.Load(path, vkey); err != nil || s != nil {
		t.Fatalf("Load of a missing file = %v, %v; want nil, nil", s, err)
	}
	seen, err := witness.Check(context.Background(), newDeployment(t, signer, events("e", 9)...), vkey, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := witness.Save(path, seen); err != nil {
		t.Fatal(err)
	}
	got, err := witness.Load(path, vkey)
	if err != nil || got.Checkpoint != seen.Checkpoint {
		t.Fatalf("Load = %+v, %v; want %+v", got, err, seen.Checkpoint)
	}
	if _, err := witness.Load(path, otherVkey); err == nil {
		t.Fatal("a state file signed by another key was accepted")
	}
	data, _ := os.ReadFile(path)
	data[len(data)/3] ^= 1
	os.WriteFile(path, data, 0o600)
	if _, err := witness.Load(path, vkey); err == nil {
		t.Fatal("a tampered state file was accepted")
	}
}

// Round remembers what it accepted across rounds, alarms on a rollback
// and on a state file that does not verify, and tells a state it could
// not save from an alarm.
func TestRound(t *testing.T) {
	signer, vkey := keys(t)
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "witness.state")
	d := newDeployment(t, signer, events("e", 5)...)
	prev, next, err := witness.Round(ctx, d, vkey, path)
	if err != nil || prev != nil || next.Checkpoint.Size != 5 {
		t.Fatalf("first round: %v, %+v, %v", prev, next.Checkpoint, err)
	}
	for _, e := range events("f", 3) {
		d.tree.Append([]byte(e))
	}
	prev, next, err = witness.Round(ctx, d, vkey, path)
	if err != nil || prev == nil || prev.Checkpoint.Size != 5 || next.Checkpoint.Size != 8 {
		t.Fatalf("second round: %+v, %+v, %v", prev, next.Checkpoint, err)
	}
	if _, _, err := witness.Round(ctx, newDeployment(t, signer, events("e", 5)...), vkey, path); !witness.Alarm(err) || !errors.Is(err, witness.ErrRollback) {
		t.Fatalf("a rolled-back deployment: %v, want a rollback alarm", err)
	}
	if s, _ := witness.Load(path, vkey); s.Checkpoint.Size != 8 {
		t.Fatalf("an alarm replaced the state: size %d", s.Checkpoint.Size)
	}

	data, _ := os.ReadFile(path)
	data[len(data)/3] ^= 1
	os.WriteFile(path, data, 0o600)
	if _, _, err := witness.Round(ctx, d, vkey, path); !witness.Alarm(err) || !errors.As(err, new(*witness.StateError)) {
		t.Fatalf("a tampered state file: %v, want a state alarm", err)
	}

	unwritable := filepath.Join(dir, "missing-dir", "witness.state")
	_, _, err = witness.Round(ctx, d, vkey, unwritable)
	if witness.Alarm(err) || !errors.As(err, new(*witness.SaveError)) {
		t.Fatalf("a state that cannot be saved: %v, want a SaveError and no alarm", err)
	}
	if witness.Alarm(errors.New("connection refused")) {
		t.Fatal("an unreachable deployment is an alarm")
	}
}
