package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/event"
)

// Finding: whoever holds keyledger's NATS identity (it must create and
// seal streams to roll) seals the segment being written and creates the
// next one themselves, with the right name, subject and FirstSeq but
// limits of their choosing (here: keep 2 messages, discard the oldest,
// deletes and purges allowed). The writer followed into it and
// acknowledged events the stream then dropped by itself. A segment whose
// config could lose a message must be refused, so requests fail instead
// of being answered and lost.
func TestAHostileNextSegmentIsNotWrittenTo(t *testing.T) {
	srv := startServer(t, t.TempDir())
	l, head := openWith(t, srv, ledger.Config{PublishTimeout: 2 * time.Second})
	l.Start(head)
	defer l.Close()
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := l.Append(ctx, newEvent("Encrypt")); err != nil {
			t.Fatal(err)
		}
	}
	nc, err := srv.Connect("attacker")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(ctx, "KEYLEDGER")
	if err != nil {
		t.Fatal(err)
	}
	info, _ := st.Info(ctx)
	sealed := info.Config
	sealed.Sealed = true
	if _, err := js.UpdateStream(ctx, sealed); err != nil {
		t.Fatal(err)
	}
	first := info.State.LastSeq + 1
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "KEYLEDGER_1", Subjects: []string{"keyledger.events.1"}, FirstSeq: first,
		MaxMsgs: 2, Discard: jetstream.DiscardOld, Storage: jetstream.FileStorage,
	}); err != nil {
		t.Fatal(err)
	}
	var acked []event.Record
	for i := 0; i < 5; i++ {
		r, err := l.Append(ctx, newEvent("Encrypt"))
		if err != nil {
			t.Logf("append %d refused: %v", i, err)
			continue
		}
		acked = append(acked, r)
	}
	// What was acknowledged must still be readable.
	read := map[event.Hash]bool{}
	err = l.EventsFrom(ctx, 0, func(r event.Record) error { read[r.Hash] = true; return nil })
	lost := 0
	for _, r := range acked {
		if !read[r.Hash] {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged events are gone from the attacker's segment (read back: %v)", lost, len(acked), err)
	}
}
