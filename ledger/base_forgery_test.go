package ledger

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/embedded"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/segment"
	"github.com/keyledger/keyledger/ledger/writer"
)

// rolledLedger is a signed ledger of a few segments (the last one open),
// written by w and closed again.
func rolledLedger(t *testing.T) (*nats.Conn, *writer.Key, []event.Record) {
	t.Helper()
	srv, err := embedded.Start(embedded.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	w := writer.Generate()
	l, head := openSigned(t, nc, w)
	l.Start(head)
	var recs []event.Record
	for i := 0; i < 7; i++ {
		var body event.Body = &event.APICall{}
		if i == 0 {
			body = &event.WriterRegistered{WriterID: w.ID(), PublicKey: w.PublicText(), RegisteredBy: w.ID()}
		}
		r, err := l.Append(context.Background(), &event.Event{Time: time.Now(), Operation: "Test", Body: body})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	l.Close()
	return nc, w, recs
}

// forgeNext publishes, as someone holding keyledger's NATS identity but
// not its writer key, a message of one event linked to the ledger's last
// event and signed by the attacker's own key, into the segment written to.
func forgeNext(t *testing.T, nc *nats.Conn, attacker *writer.Key, body event.Body) (event.Record, uint64) {
	t.Helper()
	ctx := context.Background()
	l, err := Open(ctx, nc, Config{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	segs := l.segs.list()
	cur := segs[len(segs)-1]
	info, err := cur.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last := info.State.LastSeq
	m, err := l.rawMsg(ctx, last)
	if err != nil {
		t.Fatal(err)
	}
	lines, _ := event.SplitBatch(m.Data)
	prev := lines[len(lines)-1]
	link, _, _ := event.DecodeLink(prev)
	ev := &event.Event{Index: link.Index + 1, Prev: event.Of(prev), Time: time.Now().UTC(), Operation: "Test", Body: body}
	raw := ev.AppendEncoded(nil)
	data := append(append([]byte(nil), raw...), '\n')
	js, _ := jetstream.New(nc)
	msg := &nats.Msg{Subject: cur.subject, Data: data, Header: nats.Header{
		writer.HeaderWriter:    {attacker.ID()},
		writer.HeaderSignature: {base64.StdEncoding.EncodeToString(attacker.Sign(last+1, data))},
	}}
	ack, err := js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequence(last))
	if err != nil {
		t.Fatal(err)
	}
	return event.Record{Seq: ack.Sequence, Event: ev, Raw: raw, Hash: event.Of(raw)}, last
}

// putBase stores rec as the base, signed by k (what anyone with
// keyledger's NATS identity can do to the KV bucket).
func putBase(t *testing.T, nc *nats.Conn, rec baseRecord, k *writer.Key) {
	t.Helper()
	ctx := context.Background()
	rec.Writer, rec.PublicKey = k.ID(), k.PublicText()
	rec.Signature = base64.StdEncoding.EncodeToString(k.SignRaw(rec.signedBytes()))
	raw, _ := json.Marshal(rec)
	js, _ := jetstream.New(nc)
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "KEYLEDGER_BASE", History: 16})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, baseKey, raw); err != nil {
		t.Fatal(err)
	}
}

// baseThrough is the base after the ledger's closed segments.
func baseThrough(t *testing.T, nc *nats.Conn, recs []event.Record, writers map[string]string) (segment.Base, merkle.Frontier) {
	t.Helper()
	l, err := Open(context.Background(), nc, Config{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	segs, err := l.Segments(context.Background())
	if err != nil || len(segs) < 3 {
		t.Fatalf("segments %+v, %v", segs, err)
	}
	through := segs[len(segs)-2].Last
	tree := &merkle.MemTree{}
	tiled := merkle.New(merkle.NewMemoryStore(), 1)
	var n uint64
	var last event.Hash
	heads := chain.Heads{}
	for _, r := range recs {
		if r.Seq <= through {
			tree.Append(r.Raw)
			tiled.Append(r.Raw)
			n, last = r.Pos+1, r.Hash
			heads.Add(r)
		}
	}
	base, err := segment.At(tree, n, last, writers, through, heads)
	if err != nil {
		t.Fatal(err)
	}
	return base, tiled.Frontier()
}

// Finding: the base record is verified with the public key it carries
// itself, and nothing ties its writer set to the ledger. Whoever holds
// keyledger's NATS identity (not its writer key) can store a base that
// names a real SegmentRemoved event, adds their own key to the writers,
// and signs it with that key; Open accepted it, and every reader folding
// from the base (audit verify, export, the background verifier, report
// --full) then authenticated the attacker's messages as the ledger's.
func TestForgedBaseWithAnAttackersWriterIsRefused(t *testing.T) {
	nc, w, recs := rolledLedger(t)
	ctx := context.Background()
	base, tree := baseThrough(t, nc, recs, map[string]string{w.ID(): w.PublicText()})
	// The genuine removal: SegmentRemoved by the writer, then its base.
	l, head := openSigned(t, nc, w)
	l.Start(head)
	removed, err := l.Append(ctx, &event.Event{Time: time.Now(), Operation: "Test",
		Body: &event.SegmentRemoved{NextIndex: base.FirstIndex, LastHash: base.Prev, Through: base.Seq}})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.StoreBase(ctx, base, tree, removed); err != nil {
		t.Fatal(err)
	}
	l.Close()

	attacker := writer.Generate()
	forged := base
	forged.Writers = maps.Clone(base.Writers)
	forged.Writers[attacker.ID()] = attacker.PublicText()
	grant, _ := forgeNext(t, nc, attacker, &event.GrantCreated{GrantID: "forged", GranteePrincipal: "arn:aws:iam::111122223333:user/mallory", Operations: []string{"Decrypt"}})
	putBase(t, nc, baseRecord{Base: forged, EventIndex: removed.Event.Index, EventSeq: removed.Seq, Tree: tree}, attacker)

	r, err := Open(ctx, nc, Config{Writer: w})
	var be *BaseError
	if errors.As(err, &be) {
		t.Logf("refused: %v", err)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	rep, aerr := r.AuditAgainst(ctx, nil, nil)
	t.Fatalf("Open accepted a base signed by an unregistered key with that key among its writers (%v); "+
		"audit from it: head %d (the forged event is %d), %d quarantined, %v", err, rep.Head.Index, grant.Event.Index, len(rep.Quarantined), aerr)
}

// Finding: on a ledger nobody pruned, an attacker with keyledger's NATS
// identity publishes a SegmentRemoved of their own (signed by their key),
// stores a base naming it and deletes the oldest sealed segment: the
// removal looks recorded. The running ledger quarantines the forged
// event, but Open accepted the base, so the deleted segment was reported
// as removed by an audited command instead of missing.
func TestForgedRemovalByAnUnregisteredWriterIsRefused(t *testing.T) {
	nc, w, recs := rolledLedger(t)
	ctx := context.Background()
	attacker := writer.Generate()
	writers := map[string]string{w.ID(): w.PublicText(), attacker.ID(): attacker.PublicText()}
	base, tree := baseThrough(t, nc, recs, writers)
	removed, _ := forgeNext(t, nc, attacker, &event.SegmentRemoved{NextIndex: base.FirstIndex, LastHash: base.Prev, Through: base.Seq})
	putBase(t, nc, baseRecord{Base: base, EventIndex: removed.Event.Index, EventSeq: removed.Seq, Tree: tree}, attacker)
	js, _ := jetstream.New(nc)
	if err := js.DeleteStream(ctx, "KEYLEDGER"); err != nil {
		t.Fatal(err)
	}

	// The attacker signed everything consistently, so the base alone
	// cannot tell: Open may take it, but whoever folds from it must check
	// its writers against an anchor the attacker cannot write. Start-up
	// has the writers its own snapshot's fold registered; audit verify a
	// checkpoint verified with the deployment's key.
	r, err := Open(ctx, nc, Config{Writer: w})
	if err != nil {
		t.Logf("Open refused: %v", err)
		return
	}
	genuine := map[string]string{w.ID(): w.PublicText()}
	var be *BaseError
	if err := r.CheckBaseWriters(genuine, "the fold from this instance's snapshot"); !errors.As(err, &be) {
		t.Fatalf("CheckBaseWriters with the genuine writers = %v, want a BaseError", err)
	}
	full := &merkle.MemTree{}
	for _, rec := range recs {
		full.Append(rec.Raw)
	}
	root, err := full.Root(int64(len(recs)))
	if err != nil {
		t.Fatal(err)
	}
	cp := merkle.Checkpoint{Origin: "test", Size: int64(len(recs)), Root: root, Extensions: merkle.WriterLines(genuine)}
	rep, err := r.AuditAgainst(ctx, &cp, nil)
	if !errors.As(err, &be) {
		t.Fatalf("audit from the forged base against a checkpoint naming the genuine writers: head %d, %d quarantined, %v; want a BaseError",
			rep.Head.Index, len(rep.Quarantined), err)
	}
	t.Logf("refused: %v", err)
	// The genuine writers pass both checks.
	if err := checkBaseWriters(segment.Base{FirstIndex: 1, Writers: genuine}, genuine, "x"); err != nil {
		t.Fatal(err)
	}
}

// revokedLedger is rolledLedger where w registers a second writer and
// revokes it again in the first segments; it returns the revoked key and
// where the ledger revoked it.
func revokedLedger(t *testing.T) (*nats.Conn, *writer.Key, *writer.Key, chain.Revocation, []event.Record) {
	t.Helper()
	srv, err := embedded.Start(embedded.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	w, v := writer.Generate(), writer.Generate()
	l, head := openSigned(t, nc, w)
	l.Start(head)
	bodies := []event.Body{
		&event.WriterRegistered{WriterID: w.ID(), PublicKey: w.PublicText(), RegisteredBy: w.ID()},
		&event.WriterRegistered{WriterID: v.ID(), PublicKey: v.PublicText(), RegisteredBy: w.ID()},
		&event.WriterRevoked{WriterID: v.ID(), RevokedBy: w.ID(), Reason: "key file stolen"},
		&event.APICall{}, &event.APICall{}, &event.APICall{}, &event.APICall{},
	}
	var recs []event.Record
	for _, body := range bodies {
		r, err := l.Append(context.Background(), &event.Event{Time: time.Now(), Operation: "Test", Body: body})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	rv, ok := l.RevokedWriter(v.ID())
	l.Close()
	if !ok {
		t.Fatal("the ledger did not revoke the second writer")
	}
	return nc, w, v, rv, recs
}

// Finding: a base may name writers the anchor (a signed checkpoint, or
// the fold from the instance's own snapshot) knows as revoked, so that a
// base from before a revocation still verifies. A thief holding a revoked
// key and keyledger's NATS identity therefore signs a base of their own
// that moves the revoked writer back among the live ones (the genuine
// base carries it as revoked), names a SegmentRemoved the thief signed,
// and every fold from the base (audit verify, the background verifier,
// report --full) accepted the thief's later messages. Signing a
// revocation of the key after them does not help the thief either.
func TestForgedBaseReinstatingARevokedWriterIsRefused(t *testing.T) {
	for _, selfRevoke := range []bool{false, true} {
		t.Run(map[bool]string{false: "reinstated", true: "reinstated, then revoked again"}[selfRevoke], func(t *testing.T) {
			nc, w, thief, rv, recs := revokedLedger(t)
			ctx := context.Background()
			base, tree := baseThrough(t, nc, recs, map[string]string{w.ID(): w.PublicText()})
			if rv.Seq > base.Seq {
				t.Fatalf("the revocation (stream sequence %d) is after the base (%d)", rv.Seq, base.Seq)
			}
			base = base.WithRevoked(map[string]chain.Revocation{thief.ID(): rv})
			l, head := openSigned(t, nc, w)
			l.Start(head)
			removed, err := l.Append(ctx, &event.Event{Time: time.Now(), Operation: "Test",
				Body: &event.SegmentRemoved{NextIndex: base.FirstIndex, LastHash: base.Prev, Through: base.Seq}})
			if err != nil {
				t.Fatal(err)
			}
			if err := l.StoreBase(ctx, base, tree, removed); err != nil {
				t.Fatal(err)
			}
			l.Close()
			recs = append(recs, removed)
			full := &merkle.MemTree{}
			for _, r := range recs {
				full.Append(r.Raw)
			}
			root, err := full.Root(int64(len(recs)))
			if err != nil {
				t.Fatal(err)
			}
			cp := merkle.Checkpoint{Origin: "test", Size: int64(len(recs)), Root: root,
				Extensions: merkle.WriterLines(map[string]string{w.ID(): w.PublicText()}) + merkle.RevokedLines(map[string]string{thief.ID(): thief.PublicText()})}
			genuine, err := Open(ctx, nc, Config{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			if rep, err := genuine.AuditAgainst(ctx, &cp, nil); err != nil || len(rep.Quarantined) != 0 || rep.Revoked[thief.ID()].Seq != rv.Seq {
				t.Fatalf("the genuine base: %v, %d quarantined, revoked %v", err, len(rep.Quarantined), rep.Revoked)
			}

			forged := base.WithRevoked(nil)
			forged.Writers = maps.Clone(base.Writers)
			forged.Writers[thief.ID()] = thief.PublicText()
			on := forgeOnOwnChain(t, nc, thief)
			sr, after := on(&event.SegmentRemoved{NextIndex: base.FirstIndex, LastHash: base.Prev, Through: base.Seq})
			putBase(t, nc, baseRecord{Base: forged, EventIndex: sr.Event.Index, EventSeq: sr.Seq, EventChain: sr.Event.Chain,
				EventAfter: after, EventPos: base.FirstIndex + uint64(len(recs)), Tree: tree}, thief)
			grant, _ := on(&event.GrantCreated{GrantID: "forged", GranteePrincipal: "arn:aws:iam::111122223333:user/mallory", Operations: []string{"Decrypt"}})
			if selfRevoke {
				on(&event.WriterRevoked{WriterID: thief.ID(), RevokedBy: thief.ID()})
			}

			r, err := Open(ctx, nc, Config{ReadOnly: true})
			var be *BaseError
			if errors.As(err, &be) {
				t.Logf("Open refused: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			rep, err := r.AuditAgainst(ctx, &cp, nil)
			if errors.As(err, &be) {
				t.Logf("audit refused: %v", err)
			} else {
				for _, q := range rep.Quarantined {
					if q.Seq == grant.Seq {
						t.Fatalf("audit quarantined the forgery (%v) but did not refuse the base: %v", q, err)
					}
				}
				t.Fatalf("audit from a base reinstating the revoked writer: %v, %d quarantined, writers %v, revoked %v; the forged grant (stream sequence %d) accepted",
					err, len(rep.Quarantined), rep.Writers, rep.Revoked, grant.Seq)
			}
			// Start-up's anchor, the fold from the instance's own
			// snapshot, knows where the writer was revoked.
			if err := r.CheckBaseRevoked(map[string]string{w.ID(): w.PublicText()}, map[string]chain.Revocation{thief.ID(): rv}, "the fold from this instance's snapshot"); !errors.As(err, &be) {
				t.Fatalf("CheckBaseRevoked = %v, want a BaseError", err)
			}
			if err := genuine.CheckBaseRevoked(map[string]string{w.ID(): w.PublicText()}, map[string]chain.Revocation{thief.ID(): rv}, "the fold from this instance's snapshot"); err != nil {
				t.Fatalf("CheckBaseRevoked refused the genuine base: %v", err)
			}
		})
	}
}

// forgeOnOwnChain returns a function that publishes, as the holder of k
// and keyledger's NATS identity, one event per message on k's data chain
// in the segment written to, each linked and signed after the one before
// (the chain starts empty); it returns the record and the stream sequence
// the signature names.
func forgeOnOwnChain(t *testing.T, nc *nats.Conn, k *writer.Key) func(event.Body) (event.Record, uint64) {
	t.Helper()
	ctx := context.Background()
	l, err := Open(ctx, nc, Config{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	segs := l.segs.list()
	cur := segs[len(segs)-1]
	name := chain.DataChain(k.ID())
	js, _ := jetstream.New(nc)
	var index, last uint64
	var prev event.Hash
	return func(body event.Body) (event.Record, uint64) {
		t.Helper()
		ev := &event.Event{Index: index, Prev: prev, Chain: name, Time: time.Now().UTC(), Operation: "Test", Body: body}
		raw := ev.AppendEncoded(nil)
		data := append(append([]byte(nil), raw...), '\n')
		msg := &nats.Msg{Subject: chainSubject(cur, name), Data: data, Header: nats.Header{
			writer.HeaderWriter:    {k.ID()},
			writer.HeaderSignature: {base64.StdEncoding.EncodeToString(k.SignAt(name, last, data))},
		}}
		ack, err := js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(last))
		if err != nil {
			t.Fatal(err)
		}
		after := last
		index, prev, last = index+1, event.Of(raw), ack.Sequence
		return event.Record{Seq: ack.Sequence, Event: ev, Raw: raw, Hash: event.Of(raw)}, after
	}
}
