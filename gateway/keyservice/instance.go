package keyservice

import (
	"time"

	"github.com/keyledger/keyledger/ledger/event"
)

// The events an instance records about itself rather than for a request:
// the writer keys that may sign the ledger, and the principals
// configuration it serves with. They are built here with every request's
// event, so the gateway builds events in one package (tests/arch_test.go);
// node appends them at start-up, before the service takes requests.

// WriterRegistration is the event that registers writer id's public key
// (base64 Ed25519) in the ledger, recorded by the registered writer by;
// the first writer of a ledger registers itself (by == id).
func WriterRegistration(now time.Time, region, id, publicKey, by string) *event.Event {
	return &event.Event{Time: now, Operation: "RegisterWriter", Region: region,
		Body: &event.WriterRegistered{WriterID: id, PublicKey: publicKey, RegisteredBy: by}}
}

// PrincipalsConfiguration is the event recording the principals
// configuration an instance serves with: its summary and hash
// (principals.Directory.Summary).
func PrincipalsConfiguration(now time.Time, region, summary, hash string) *event.Event {
	return &event.Event{Time: now, Operation: "UpdatePrincipals", Region: region,
		Body: &event.PrincipalsConfigured{Summary: summary, Hash: hash}}
}
