// Package chain checks the hash chains that link ledger events, and the
// authorship of the messages that carry them.
//
// # Chains
//
// A ledger is one stream of messages in one total order (the stream
// sequence), carrying several hash chains, one per subject (package ledger
// maps subjects to chain names):
//
//   - the legacy chain "" (subject <Subject>): every event of a ledger
//     written before chains existed. It stays readable and verifiable
//     forever, by the rules it was written under.
//   - a data chain per writer, "w.<writer ID>": the events a writer records
//     without changing key state (Encrypt, Decrypt, Sign, reads, refused
//     requests). Only that writer appends to it, so writers never contend.
//   - the control chains "c.<p>", p = xxhash64(partition key) mod
//     Partitions: key-state changes (key state, policy, aliases, grants,
//     rotation, deletion, import). A change is appended to the chain of its
//     partition (the key, the alias, or the service) only if nothing on the
//     chains it depends on changed since the state it was validated against
//     (JetStream's expected-last-subject-sequence), so changes stay
//     linearizable while unrelated keys never conflict. Any registered writer
//     may append to a control chain.
//
// Every event names its dense index on its chain and the SHA-256 of the
// previous event's stored bytes on that chain; events of the new chains
// also name their chain (the optional "chain" member, package event), so an
// event read alone says where it links. A Linker follows one chain event
// by event and reports the first link that does not hold: a changed,
// removed, inserted or reordered event breaks the link to its successor (or
// its own index). The chain alone cannot tell a truncated tail from a short
// ledger; signed checkpoints do that.
//
// # What a verifier checks
//
// Per message (Folder, the one rule every reader applies):
//
//   - it is signed by a registered writer for its place: on the legacy
//     chain, for its stream sequence (writer signature v1); on the other
//     chains, for its chain and the stream sequence of the previous message
//     on that chain, quarantined ones included (v2): exactly what the
//     writer's Nats-Expected-Last-Subject-Sequence asserted when it
//     published, so a writer signs its place without knowing (or contending
//     for) the stream sequence. A captured message replayed later, or moved
//     to another chain, does not verify;
//   - a message on a data chain is signed by that chain's writer;
//   - the writer was registered by an earlier accepted message (the
//     ledger's very first writer registers itself in its first message);
//   - every event links to the last valid event of its chain and, on the
//     new chains, names that chain.
//
// A message that breaks a rule is quarantined whole: never applied, always
// reported, and its chain continues from its last valid event.
//
// # Revoked writers
//
// A WriterRevoked event in an accepted message revokes its writer from the
// next message on: every later message that writer signs is quarantined
// (ErrRevokedWriter), on any chain, while its messages before stay valid
// history. A WriterRegistered naming a revoked writer registers nothing: a
// revoked key never comes back, the operator registers a new one. The
// fold never revokes the last writer (the event then changes nothing), so
// a ledger that had a writer always has one, and the first-writer
// bootstrap and unsigned legacy messages stay closed for good.
//
// Revocation is recorded with the same authority as registration: any
// registered writer may sign either. A thief holding a writer key (and a
// NATS credential) can therefore revoke honest writers, down to its own
// key alone, as it could register keys of its own; what it cannot do is
// hide it: every revocation is a signed event audit verify names. The
// operator's answer is to revoke the stolen key through an honest
// instance, or, if the thief revoked them all, to restore from a backup
// (package backup) taken before and rotate every key.
//
// The revoked set is part of the fold's State, kept in snapshots and in
// the base a removed segment leaves (package segment): a fold resumed
// from either refuses what a fold from the first message refuses. A State
// saved before revocation existed has none, which is what it held.
//
// Globally: the accepted events in stream order are the ledger. An
// event's position (event.Record.Pos) is its place in that order, counted
// from the ledger's first event; it is the leaf index of the ledger's one
// RFC 6962 Merkle tree, whose signed checkpoints and proofs cover every
// chain at once (package merkle, package checkpoint). On a ledger with only
// the legacy chain, position and index are the same number. A verifier
// checks every chain's links and signatures, and that the events in stream
// order rebuild the signed root: a dropped, inserted or reordered message
// on any chain, or a cut-off tail of the stream, fails one or the other.
// Which writer wrote what is in every record (event.Record.Writer: the
// writer whose signature the message carries).
//
// # Partitions
//
// Partitions (64) is fixed for every ledger: changing it would let two
// instances put changes to one key on different chains. The ledger records
// it in its stream's metadata and refuses to open a stream that names
// another.
//
// Linkers and Folders are not safe for concurrent use.
package chain
