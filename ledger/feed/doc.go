// Package feed announces the ledger's committed events live, on NATS
// subjects a subscriber filters by account, key and event name:
//
//	keyledger.audit.<account>.<key id>.<event name>
//
// ("_" stands for no account or no key; a ledger stream other than the
// default adds its name after "keyledger.audit"), e.g.
// keyledger.audit.111122223333.*.Decrypt or keyledger.audit.*.<key id>.>.
//
// # Delivery
//
// Live delivery is core NATS: at most once, and never on the request path
// (the node hands committed batches to the feed from a queue, dropping
// what does not fit rather than holding the ledger's writer). The ledger
// stream itself is the history: Ledger.EventsFrom and Ledger.EventsSince
// resume from an index or a time, and a subscriber that sees a gap in the
// indexes fills it from there. With the embedded server an event whose
// subject no subscription matches is not sent at all (OnlyHeard): core
// NATS would drop it, and building and routing every event for no one was
// about 3 % of the server's CPU under load.
//
// # Security
//
// Each message is the event's exact stored bytes with its index in the
// Keyledger-Index header, so a subscriber checks the hash chain and the
// Merkle proofs itself rather than trusting the transport. Events carry
// wrapped-material commitments only: nothing secret is announced. Who may
// subscribe is the NATS server's to decide (package embedded grants audit
// identities these subjects and nothing that writes).
//
// # Concurrency
//
// A Feed is safe for concurrent use.
package feed
