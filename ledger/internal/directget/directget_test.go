package directget

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// fakeStream answers $JS.API.DIRECT.GET.S with the messages reply makes,
// as a (misbehaving) server could.
func fakeStream(t *testing.T, reply func(nc *nats.Conn, inbox string)) *nats.Conn {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(ns.Shutdown)
	srv, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	if _, err := srv.Subscribe("$JS.API.DIRECT.GET.S", func(m *nats.Msg) { reply(srv, m.Reply) }); err != nil {
		t.Fatal(err)
	}
	if err := srv.Flush(); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func sendSeq(nc *nats.Conn, inbox string, seqs ...string) {
	m := nats.NewMsg(inbox)
	m.Header.Set(nats.JSStream, "S")
	for _, s := range seqs {
		m.Header.Add(nats.JSSequence, s)
	}
	m.Data = []byte("x")
	_ = nc.PublishMsg(m)
}

// A batch that stops mid-way ends after the stall with what arrived, no
// error, and not Ended: the caller asks for the rest itself.
func TestBatchStalledMidway(t *testing.T) {
	nc := fakeStream(t, func(nc *nats.Conn, inbox string) {
		sendSeq(nc, inbox, "1")
		sendSeq(nc, inbox, "2")
	})
	var got []uint64
	res, err := Batch(context.Background(), nc, "S", Request{Seq: 1, Batch: 10}, 200*time.Millisecond, func(_ *nats.Msg, seq uint64) error {
		got = append(got, seq)
		return nil
	})
	if err != nil || res.Ended || res.Last != 2 || len(got) != 2 {
		t.Fatalf("stalled batch: %+v %v %v", res, got, err)
	}
}

// A stored message may carry its own Nats-Sequence header (anyone who may
// publish to the stream can set it); nats-server appends the real one
// after it in a direct get's answer. The sequence is the server's, and a
// message of another stream (another client of the account named our
// inbox as its reply subject) is not taken for one of ours.
func TestBatchSequenceIsTheServers(t *testing.T) {
	nc := fakeStream(t, func(nc *nats.Conn, inbox string) {
		other := nats.NewMsg(inbox) // another stream's answer, sent here by someone else's request
		other.Header.Set(nats.JSStream, "OTHER")
		other.Header.Set(nats.JSSequence, "2")
		_ = nc.PublishMsg(other)
		sendSeq(nc, inbox, "7", "2") // stored header first, server's last
		m := nats.NewMsg(inbox)
		m.Header.Set("Status", "204")
		_ = nc.PublishMsg(m)
	})
	var got []uint64
	_, err := Batch(context.Background(), nc, "S", Request{Seq: 2, Batch: 10}, time.Second, func(_ *nats.Msg, seq uint64) error {
		got = append(got, seq)
		return nil
	})
	if err != nil || len(got) != 1 || got[0] != 2 {
		t.Fatalf("got sequences %v (%v), want [2]", got, err)
	}
}

// A canceled context ends a batch at once, with the context's error.
func TestBatchCanceled(t *testing.T) {
	nc := fakeStream(t, func(*nats.Conn, string) {})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if _, err := Batch(ctx, nc, "S", Request{Seq: 1, Batch: 10}, time.Hour, func(*nats.Msg, uint64) error { return nil }); err != context.Canceled {
		t.Fatalf("canceled batch: %v", err)
	}
}

// A batch whose first message does not come within Patience is stalled
// then (a responder that answers nothing), not after the longer stall.
func TestBatchPatienceForTheFirstMessage(t *testing.T) {
	nc := fakeStream(t, func(*nats.Conn, string) {})
	began := time.Now()
	res, err := Batch(context.Background(), nc, "S", Request{Seq: 1, Batch: 10, Patience: 50 * time.Millisecond}, time.Hour,
		func(*nats.Msg, uint64) error { return nil })
	if err != nil || !res.Stalled || res.Ended || time.Since(began) > 10*time.Second {
		t.Fatalf("unanswered batch: %+v %v after %v, want stalled after its patience", res, err, time.Since(began))
	}
}
