package ledger_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/writer"
)

// BenchmarkAppendOneAtATime is the commit path one client waits for
// (the c=1 latency of every audited request), beside its floor: a bare
// JetStream publish of a message of the same size on the same server,
// acknowledged after its fsync. The difference is what the ledger adds
// (linking, encoding, signing, the writer's and the follower's hand-offs
// and the fold). Run it with
// go test ./ledger -run - -bench AppendOneAtATime -benchtime 3000x.
func BenchmarkAppendOneAtATime(b *testing.B) {
	srv := startServer(b, b.TempDir())
	b.Run("jetstream", func(b *testing.B) {
		nc, err := srv.Connect("bench")
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		ctx := context.Background()
		if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BARE", Subjects: []string{"bare"}, Storage: jetstream.FileStorage}); err != nil {
			b.Fatal(err)
		}
		data := bytes.Repeat([]byte("x"), 600)
		b.ResetTimer()
		for range b.N {
			if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: "bare", Data: data}); err != nil {
				b.Fatal(err)
			}
		}
	})
	w := writer.Generate()
	l := openWriter(b, srv, w, nil)
	ctx := context.Background()
	if _, err := l.Append(ctx, &event.Event{Time: time.Now(), Operation: "RegisterWriter",
		Body: &event.WriterRegistered{WriterID: w.ID(), PublicKey: w.PublicText(), RegisteredBy: w.ID()}}); err != nil {
		b.Fatal(err)
	}
	b.Run("ledger", func(b *testing.B) {
		for range b.N {
			if _, err := l.Append(ctx, newEvent("Encrypt")); err != nil {
				b.Fatal(err)
			}
		}
	})
}
