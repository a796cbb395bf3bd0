package ledger

import (
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/writer"
)

// The fold. Every message read from the stream, whoever wrote it, is
// authenticated and linked by a chain.Folder before anything is applied;
// a message that fails is quarantined: counted, logged as an alarm,
// remembered by stream sequence so readers of the history skip it, and
// never applied. The writer's own folder (l.fold) is the one that counts.

// foldMessage folds one message into f, quarantining it if need be; nil
// records means quarantined. Only the ledger's own folder (l.fold) counts
// and raises alarms: a Replay after Start walks with a folder of its own.
func (l *Ledger) foldMessage(f *chain.Folder, m chain.Message) []event.Record {
	recs, err := f.Fold(m)
	l.folded1(f, recs, err)
	return recs
}

// folded1 notes what folding one message into f did.
func (l *Ledger) folded1(f *chain.Folder, recs []event.Record, err error) {
	own := f == l.fold
	if own {
		l.noteFolded()
		if len(recs) > 0 {
			l.anchors.note(recs[0].Seq, recs[0].Pos, len(recs))
		}
	}
	if err != nil {
		var q *chain.Quarantine
		if errors.As(err, &q) && own {
			l.quarantine(q)
		}
	}
}

// message is the stored message m at stream sequence seq, as the fold
// takes it: on the chain its subject names.
func (l *Ledger) message(m storedMsg, seq uint64) chain.Message {
	h := m.Headers()
	return chain.Message{Seq: seq, Chain: l.chainOf(m.Subject()), Data: m.Data(),
		Writer: h.Get(writer.HeaderWriter), Signature: h.Get(writer.HeaderSignature), Imported: h.Get(writer.HeaderImported) != ""}
}

// quarantine counts and raises the alarm for a refused message.
func (l *Ledger) quarantine(q *chain.Quarantine) {
	l.quarantined.Add(1)
	l.qmu.Lock()
	if l.qseqs == nil {
		l.qseqs = map[uint64]string{}
	}
	l.qseqs[q.Seq] = q.Chain
	if len(l.qfirst) < reportedQuarantines {
		l.qfirst = append(l.qfirst, fmt.Sprintf("stream sequence %d (chain %q, writer %q): %v", q.Seq, q.Chain, q.Writer, q.Reason))
	}
	l.qmu.Unlock()
	l.cfg.Logger.Error("ALARM: ledger message quarantined: not applied; its chain continues from its last valid event",
		"stream_sequence", q.Seq, "chain", q.Chain, "writer", q.Writer, "reason", q.Reason.Error())
}

// reportedQuarantines is how many quarantines QuarantineReasons keeps.
const reportedQuarantines = 5

// noteFolded publishes the folder's position and writers to readers of
// the history. With the follower running it is called under fmu.
func (l *Ledger) noteFolded() {
	// The folder replaces its maps on every change, never edits them: a
	// new map is a change (a revocation and a registration in one batch
	// keep the count).
	if k := l.fold.Keys(); l.keys.Load() == nil || !sameMap(*l.keys.Load(), k) {
		l.keys.Store(&k)
	}
	if r := l.fold.Revoked(); l.revoked.Load() == nil || !sameMap(*l.revoked.Load(), r) {
		var was bool
		if old := l.revoked.Load(); old != nil && l.cfg.Writer != nil {
			_, was = (*old)[l.cfg.Writer.ID()]
		}
		l.revoked.Store(&r)
		if w := l.cfg.Writer; w != nil && !was {
			if rv, ok := r[w.ID()]; ok {
				l.cfg.Logger.Error("ALARM: this instance's writer key was revoked: it appends nothing from now on and answers every request 503; give it a new writer key and register that",
					"writer", w.ID(), "revoked_by", rv.By, "event", rv.Pos, "stream_sequence", rv.Seq)
			}
		}
	}
}

// sameMap reports whether a and b are the same map (not equal ones).
func sameMap[K comparable, V any](a, b map[K]V) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// authentic reports whether a message may be shown to readers of the
// history: folded and accepted. Past what this instance folded, only a
// legacy-chain message signed for its stream sequence by a registered
// writer (or unsigned while none is) can be judged alone; any other is
// not shown until folded.
func (l *Ledger) authentic(m storedMsg, seq uint64) bool {
	if seq <= l.folded.Load() || !l.started.Load() && seq <= l.foldThrough() {
		return !l.quarantinedSeq(seq)
	}
	cm := l.message(m, seq)
	if cm.Chain != chain.Legacy {
		return false
	}
	keys := l.keys.Load()
	if keys == nil || len(*keys) == 0 {
		return cm.Writer == ""
	}
	pub, ok := (*keys)[cm.Writer]
	sig, err := base64.StdEncoding.DecodeString(cm.Signature)
	return ok && err == nil && writer.Verify(pub, seq, cm.Data, sig)
}

// foldThrough is the fold's Through (before Start: what Replay folded).
func (l *Ledger) foldThrough() uint64 {
	l.fmu.Lock()
	defer l.fmu.Unlock()
	return l.fold.Through()
}

// quarantinedSeq reports whether folding refused the message at seq.
func (l *Ledger) quarantinedSeq(seq uint64) bool {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	_, ok := l.qseqs[seq]
	return ok
}

// Quarantined is how many messages this instance refused to fold.
func (l *Ledger) Quarantined() uint64 { return l.quarantined.Load() }

// QuarantineReasons names the first quarantined messages (at most five):
// where they are in the stream, the writer they claim, and why.
func (l *Ledger) QuarantineReasons() []string {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	return append([]string(nil), l.qfirst...)
}

// QuarantinedThrough lists the stream sequences quarantined at or before
// seq, in order.
func (l *Ledger) QuarantinedThrough(seq uint64) []uint64 {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	var out []uint64
	for s := range l.qseqs {
		if s <= seq {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// QuarantinedChains names the chain of every message quarantined at or
// before seq (what a snapshot records, so a fold resumed from it signs and
// checks each chain's next message after them).
func (l *Ledger) QuarantinedChains(seq uint64) map[uint64]string {
	l.qmu.Lock()
	defer l.qmu.Unlock()
	out := map[uint64]string{}
	for s, c := range l.qseqs {
		if s <= seq {
			out[s] = c
		}
	}
	return out
}

// Writers returns the writers the ledger has registered (ID → public key).
func (l *Ledger) Writers() map[string]string {
	out := map[string]string{}
	if k := l.keys.Load(); k != nil {
		for id, pub := range *k {
			out[id] = base64.StdEncoding.EncodeToString(pub)
		}
	}
	return out
}

// KnownWriters returns every writer the ledger ever registered, revoked
// ones included (ID → public key, base64): whom a base or a snapshot from
// before a revocation may name.
func (l *Ledger) KnownWriters() map[string]string {
	out := l.Writers()
	for id, r := range l.Revoked() {
		out[id] = r.PublicKey
	}
	return out
}

// Revoked returns the writers the ledger has revoked, by ID; callers must
// not change the map.
func (l *Ledger) Revoked() map[string]chain.Revocation {
	if r := l.revoked.Load(); r != nil {
		return *r
	}
	return nil
}

// RevokedWriter reports whether the ledger has revoked a writer, and where.
func (l *Ledger) RevokedWriter(id string) (chain.Revocation, bool) {
	r, ok := l.Revoked()[id]
	return r, ok
}

// Registered reports whether the ledger has registered a writer (and not
// revoked it).
func (l *Ledger) Registered(id string) bool {
	k := l.keys.Load()
	if k == nil {
		return false
	}
	_, ok := (*k)[id]
	return ok
}
