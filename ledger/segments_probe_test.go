package ledger_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestStreamFirstSeqContinuesSequence checks on the real nats-server what
// ledger segments rest on: a stream created with FirstSeq = n+1 stores its
// first message at n+1, accepts expected-last-sequence n for it (and
// refuses any other), and can be deleted while the other stream (with
// deny_delete and deny_purge) stays.
func TestStreamFirstSeqContinuesSequence(t *testing.T) {
	srv := startServer(t, t.TempDir())
	nc, err := srv.Connect("probe")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	s0, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "P", Subjects: []string{"p.events"}, DenyDelete: true, DenyPurge: true, AllowDirect: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(0); i < 3; i++ {
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: "p.events", Data: []byte("x")}, jetstream.WithExpectLastSequence(i)); err != nil {
			t.Fatal(err)
		}
	}
	s1, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "P_1", Subjects: []string{"p.events.1"}, FirstSeq: 4, DenyDelete: true, DenyPurge: true, AllowDirect: true})
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := s1.Info(ctx); info.State.Msgs != 0 {
		t.Fatalf("new stream holds %d messages", info.State.Msgs)
	} else {
		t.Logf("empty stream with FirstSeq 4: state first %d last %d", info.State.FirstSeq, info.State.LastSeq)
	}
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: "p.events.1", Data: []byte("y")}, jetstream.WithExpectLastSequence(0)); err == nil {
		t.Fatal("expected-last-sequence 0 accepted on a stream starting at 4")
	}
	ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: "p.events.1", Data: []byte("y")}, jetstream.WithExpectLastSequence(3))
	if err != nil {
		t.Fatalf("expected-last-sequence 3 on a stream starting at 4: %v", err)
	}
	if ack.Sequence != 4 {
		t.Fatalf("first message of the new stream at sequence %d, want 4", ack.Sequence)
	}
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: "p.events.1", Data: []byte("z")}, jetstream.WithExpectLastSequence(4)); err != nil {
		t.Fatal(err)
	}
	info, _ := s1.Info(ctx)
	if info.State.FirstSeq != 4 || info.State.LastSeq != 5 || info.Config.FirstSeq != 4 {
		t.Fatalf("state %+v config first %d", info.State, info.Config.FirstSeq)
	}
	if m, err := s1.GetMsg(ctx, 4); err != nil || string(m.Data) != "y" {
		t.Fatalf("direct get of 4: %v", err)
	}
	// Sealing the old stream is what stops a writer that has not seen the
	// roll from forking the sequence there.
	info0, _ := s0.Info(ctx)
	cfg := info0.Config
	cfg.Sealed = true
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatalf("sealing: %v", err)
	}
	_, err = js.PublishMsg(ctx, &nats.Msg{Subject: "p.events", Data: []byte("fork")}, jetstream.WithExpectLastSequence(3))
	if err == nil {
		t.Fatal("a sealed stream took a message")
	}
	t.Logf("publish to sealed: %v", err)
	if err := js.DeleteStream(ctx, "P"); err != nil {
		t.Fatalf("deleting a deny_delete stream: %v", err)
	}
	if _, err := s0.Info(ctx); err == nil {
		t.Fatal("stream P still there")
	}
}
