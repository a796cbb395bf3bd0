package chain

import (
	"context"
	"errors"
	"maps"
	"testing"

	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/writer"
)

func revoke(w, by *writer.Key) *event.WriterRevoked {
	return &event.WriterRevoked{WriterID: w.ID(), RevokedBy: by.ID(), Reason: "stolen"}
}

func TestFolderRevocation(t *testing.T) {
	first, second, stranger := writer.Generate(), writer.Generate(), writer.Generate()
	tests := []struct {
		name    string
		after   func(s *signedLedger) // after first revoked second, at sequence 3
		want    error                 // why the one quarantined message is; nil: none is
		writers []string              // registered at the end
	}{
		{"the revoked key signs", func(s *signedLedger) { s.forge(second, &event.APICall{}) }, ErrRevokedWriter, []string{first.ID()}},
		{"the revoked key re-registers itself", func(s *signedLedger) { s.forge(second, register(second, second)) }, ErrRevokedWriter, []string{first.ID()}},
		{"a writer re-registers the revoked key", func(s *signedLedger) {
			s.append(first, register(second, first))
			s.forge(second, &event.APICall{})
		}, ErrRevokedWriter, []string{first.ID()}},
		{"the last writer is revoked", func(s *signedLedger) {
			s.append(first, revoke(first, first)) // revokes nothing: a ledger keeps a writer
			s.append(first, &event.APICall{})
		}, nil, []string{first.ID()}},
		{"a stranger registers itself once every other writer is gone", func(s *signedLedger) {
			s.forge(stranger, register(stranger, stranger))
		}, ErrUnknownWriter, []string{first.ID()}},
		{"an unsigned message", func(s *signedLedger) { s.forge(nil, &event.APICall{}) }, ErrUnsigned, []string{first.ID()}},
		{"a new key for the same host", func(s *signedLedger) {
			s.append(first, register(stranger, first))
			s.append(stranger, &event.APICall{})
		}, nil, []string{first.ID(), stranger.ID()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &signedLedger{}
			s.append(first, register(first, first), register(second, first))
			s.append(second, &event.APICall{}) // before the revocation: valid history
			s.append(first, revoke(second, first))
			tt.after(s)
			r, err := Audit(context.Background(), s)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.want == nil && len(r.Quarantined) != 0:
				t.Fatalf("quarantined %v", r.Quarantined)
			case tt.want != nil && (len(r.Quarantined) != 1 || !errors.Is(r.Quarantined[0], tt.want)):
				t.Fatalf("quarantined %v, want one for %v", r.Quarantined, tt.want)
			}
			if got := keysOf(r.Writers); !equalSets(got, tt.writers) {
				t.Errorf("writers %v, want %v", got, tt.writers)
			}
			rv, ok := r.Revoked[second.ID()]
			if !ok || rv.By != first.ID() || rv.Seq != 3 || rv.Pos != 3 || rv.PublicKey != second.PublicText() {
				t.Errorf("revocation %+v (found %v), want by %s at sequence 3, position 3", rv, ok, first.ID())
			}
			if r.Head.Count < 4 {
				t.Errorf("head %+v: the revoked writer's earlier message must stay valid", r.Head)
			}
		})
	}
}

// TestFolderRevocationResumes folds a ledger with a revocation whole, and
// resumed at every message from the state a snapshot keeps (and from one
// without the revoked set, as saved before revocation existed, wherever
// none was revoked yet): every fold agrees.
func TestFolderRevocationResumes(t *testing.T) {
	first, second := writer.Generate(), writer.Generate()
	s := &signedLedger{}
	s.append(first, register(first, first), register(second, first))
	s.append(second, &event.APICall{})
	s.append(first, revoke(second, first))
	s.forge(second, &event.APICall{})
	s.append(first, register(second, first))
	s.forge(second, &event.APICall{})
	s.append(first, &event.APICall{})
	whole, err := Audit(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if len(whole.Quarantined) != 2 {
		t.Fatalf("quarantined %v, want the 2 forgeries", whole.Quarantined)
	}
	for cut := 1; cut < len(s.msgs); cut++ {
		f := NewFolder()
		for _, m := range s.msgs[:cut] {
			f.Fold(m)
		}
		st := f.State()
		if len(st.Revoked) == 0 {
			st.Revoked = nil // an old snapshot
		}
		g := ResumeFolderAt(st)
		var qs int
		for _, m := range s.msgs[cut:] {
			if _, err := g.Fold(m); err != nil {
				if !errors.Is(err, ErrRevokedWriter) {
					t.Fatalf("cut %d: %v", cut, err)
				}
				qs++
			}
		}
		if g.Head() != whole.Head || !maps.Equal(g.Writers(), whole.Writers) || !maps.Equal(g.Revoked(), whole.Revoked) {
			t.Errorf("cut %d: resumed at %+v %v %v, whole %+v %v %v", cut, g.Head(), g.Writers(), g.Revoked(), whole.Head, whole.Writers, whole.Revoked)
		}
		if want := countAfter(whole.Quarantined, uint64(cut)); qs != want {
			t.Errorf("cut %d: %d quarantined after it, whole fold %d", cut, qs, want)
		}
	}
}

// TestRegisterRevokes checks the rule snapshots track beside the fold is
// the Folder's.
func TestRegisterRevokes(t *testing.T) {
	first, second := writer.Generate(), writer.Generate()
	s := &signedLedger{}
	s.append(first, register(first, first), register(second, first))
	s.append(first, revoke(second, first), register(second, first))
	f := NewFolder()
	var all []event.Record
	for _, m := range s.msgs {
		recs, err := f.Fold(m)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, recs...)
	}
	keys, revoked := Register(nil, nil, all)
	if len(keys) != 1 || keys[first.ID()] == nil || !maps.Equal(revoked, f.Revoked()) {
		t.Fatalf("Register: %v %v, the folder %v %v", keys, revoked, f.Keys(), f.Revoked())
	}
}

func countAfter(qs []*Quarantine, seq uint64) int {
	n := 0
	for _, q := range qs {
		if q.Seq > seq {
			n++
		}
	}
	return n
}

func keysOf(m map[string]string) []string { return sortedKeys(m) }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func equalSets(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]bool{}
	for _, x := range a {
		seen[x] = true
	}
	for _, x := range b {
		if !seen[x] {
			return false
		}
	}
	return true
}

// TestNoSelfRegistrationAfterRevocation: a state whose writers are all
// gone (a damaged or hand-made base) still had writers: nobody registers
// themselves, and unsigned messages stay refused.
func TestNoSelfRegistrationAfterRevocation(t *testing.T) {
	gone, stranger := writer.Generate(), writer.Generate()
	s := &signedLedger{}
	s.forge(stranger, register(stranger, stranger))
	s.forge(nil, &event.APICall{})
	f := ResumeFolderAt(State{Revoked: map[string]Revocation{gone.ID(): {By: gone.ID()}}})
	for i, m := range s.msgs {
		if _, err := f.Fold(m); err == nil {
			t.Errorf("message %d accepted", i+1)
		}
	}
	if f.Registered(stranger.ID()) {
		t.Fatal("the stranger registered itself")
	}
}

// TestCheckNamedRevoked: what a checkpoint of size events names revoked
// must be exactly what the fold revoked before size, with the same keys;
// RevokedBefore gives a checkpointer whose tree lags the fold those lines.
func TestCheckNamedRevoked(t *testing.T) {
	rv := map[string]Revocation{"aa": {PublicKey: "YQ==", Pos: 3}, "bb": {PublicKey: "Yg==", Pos: 9}}
	tests := []struct {
		name  string
		named map[string]string
		size  uint64
		ok    bool
	}{
		{"both before", map[string]string{"aa": "YQ==", "bb": "Yg=="}, 10, true},
		{"one before, one after", map[string]string{"aa": "YQ=="}, 5, true},
		{"none before", nil, 3, true},
		{"named, revoked at its size", map[string]string{"aa": "YQ==", "bb": "Yg=="}, 9, false},
		{"named, never revoked (a base brought it back)", map[string]string{"aa": "YQ==", "cc": "Yw=="}, 5, false},
		{"named with another key", map[string]string{"aa": "Yw=="}, 5, false},
		{"revoked before, not named (a base added it)", map[string]string{"aa": "YQ=="}, 10, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := CheckNamedRevoked(tc.named, tc.size, rv); (err == nil) != tc.ok {
				t.Fatalf("CheckNamedRevoked = %v, want ok %v", err, tc.ok)
			}
		})
	}
	live, gone := RevokedBefore(map[string]string{"cc": "Yw=="}, rv, 5)
	if !maps.Equal(live, map[string]string{"bb": "Yg==", "cc": "Yw=="}) || !maps.Equal(gone, map[string]string{"aa": "YQ=="}) {
		t.Fatalf("RevokedBefore: live %v, revoked %v", live, gone)
	}
	if err := CheckNamedRevoked(gone, 5, rv); err != nil {
		t.Fatalf("what RevokedBefore names does not check: %v", err)
	}
}
