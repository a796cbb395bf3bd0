package tests

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestAuditIdentityReadsPastSegment128: with a segment per group commit,
// 140 requests make more than 128 segment streams (the audit identity
// could once read only KEYLEDGER_1…_128); `audit verify` as the audit
// identity over the embedded server's NATS listener reads them all.
func TestAuditIdentityReadsPastSegment128(t *testing.T) {
	t.Parallel() // its own servers and directories: runs beside the others
	in := start(t, withNATSListen(), func(i *instance) { i.ledgerCf.SegmentMessages = 1 })
	ctx := context.Background()
	key := in.createKey("segments")
	for range 140 {
		if _, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &key, Plaintext: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	auth, err := nats.NkeyOptionFromSeed(in.backend.AuditSeedFile())
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(in.backend.ClientURL(), auth)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	segments := 0
	names := js.StreamNames(ctx)
	for name := range names.Name() {
		if strings.HasPrefix(name, "KEYLEDGER_") && strings.Trim(strings.TrimPrefix(name, "KEYLEDGER_"), "0123456789") == "" {
			segments++
		}
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	if segments <= 128 {
		t.Fatalf("only %d segment streams; the test needs more than 128", segments)
	}
	code, out := cli(t, "audit", "verify", "--nats-url", in.backend.ClientURL(), "--nats-creds", in.backend.AuditSeedFile())
	if code != 0 {
		t.Fatalf("audit verify over %d segments as the audit identity: exit %d\n%s", segments, code, tail(out, 2000))
	}
	t.Logf("%d segments; audit verify: %s", segments, strings.TrimSpace(tail(out, 300)))
}
