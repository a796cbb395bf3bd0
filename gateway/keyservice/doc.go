// Package keyservice is keyledger's application service: one method per AWS
// KMS operation, each validated against the key-state projection, answered
// with real cryptography, and recorded in the ledger before it returns.
//
// # Request flow
//
// Every method builds one ledger event: a state change (KeyCreated,
// KeyDisabled, …) or an APICall for cryptographic operations, reads and every
// refusal. The method returns only after the ledger has acknowledged the
// event; if the ledger cannot take it, the caller gets KMSInternalException
// and nothing happened (no ciphertext, no key, no state change). The writing
// instance folds its own events before answering, so it reads its writes.
//
// # Authorization
//
// Every operation authorizes the caller (authz.go) right after resolving
// the key and before looking at its state, so a caller who may not use a
// key learns nothing about it. Refusals are recorded like any other.
//
// # Ordering
//
// State-changing operations hold the service's lock exclusively from
// validation until their event is folded; every other operation holds it
// shared until its event is committed. So no Encrypt is ever recorded after
// the DisableKey that should have stopped it, and two CreateAlias calls cannot
// both claim a name. Changes are rare (AWS's quota is 5/s), uses are not; the
// shared side is cheap.
//
// # Secrets
//
// Plaintext key material exists only unwrapped in the material cache (as
// secret.Bytes) and briefly in crypto calls. Events, logs and error messages
// carry key ids, material ids and commitments, never plaintext, ciphertext,
// data keys or key material.
//
// # Multi-Region keys
//
// ops_multiregion.go serves CreateKey MultiRegion, ReplicateKey and
// UpdatePrimaryRegion and the checks other operations make of related
// keys; replicator.go carries what related keys share between regions
// (signed messages over ledger/replication, key material sealed to the
// receiving region's replication key) and records, in this region's
// ledger, what reached it from the others, with their event ids. The
// state the replicator sends from is the key-state projection, so what it
// owes another region survives any crash.
//
// Scheduled work (a key whose deletion falls due) is driven by the injected
// Clock: RunDue turns it into DeleteKey events and destroys the material.
package keyservice
