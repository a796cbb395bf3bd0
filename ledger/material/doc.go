// Package material is the deletable store of wrapped key material, built so
// that destroying a material does not rest on any storage engine's delete
// path (crypto-shredding).
//
// Each material arrives wrapped under the root key (version 1 bytes, which
// the ledger commits to by hash). The store seals it once more under a
// random 32-byte per-material key (crypto/shred, version 2) and keeps the
// two apart:
//
//   - the sealed bytes in a JetStream key-value bucket, apart from the ledger
//     stream;
//   - the per-material key in a key store keyledger controls itself. On the
//     embedded default that is a file of fixed-size slots under the data
//     directory (<data-dir>/shred/material-keys.slots) that keyledger
//     overwrites in place and fsyncs (see slots.go). With an external NATS
//     deployment (--nats-url; several instances must share the keys) it is a
//     second bucket, erased with JetStream's secure delete: a weaker
//     guarantee, since it rests on the NATS servers' delete path again
//     (README "Deletion really deletes").
//
// Every part is kept twice (copies.go), because key material is the one
// thing whose loss loses customers' data: the sealed bytes in <bucket> and
// <bucket>-copy, the per-material key in material-keys.slots and
// material-keys.copy.slots (or <bucket>-keys and <bucket>-keys-copy). A
// read uses whichever key and bytes open and match the ledger's
// commitment and rewrites the other parts from them; Check does so for
// every live material. A material no copy opens is an *UnreadableError,
// never ErrNotFound: it was not deleted, and Restore puts it back from a
// backup, checked against the commitment.
//
// Put writes and fsyncs both of the key's slots before the sealed bytes
// are stored in both buckets, and the caller commits to the material in
// the ledger only after Put. Destroy zeroes the second slot, then the
// first, fsyncing each, then erases both bucket entries with secure delete
// as defence in depth. Once the slots are zeroed, no file holds anything
// that opens the sealed bytes, whatever copies the buckets' block files
// keep, even for someone holding the root key and the whole ledger.
// Crash points: a slot written but never committed (an orphan, in either
// file) is reclaimed by Reclaim at start-up; so is a damaged slot (bad
// checksum) naming a material the ledger does not hold live. A damaged
// slot of a live material is kept until Check has rewritten the key from
// the other file: zeroing it first would destroy a key over a flipped bit.
// At most MaxReclaim orphans are reclaimed: more means the ledger lost
// events, so they are kept and logged instead. Slots of destroyed
// materials are zeroed again at every start.
//
// The order with the ledger: when a key's deletion falls due the scheduler
// (gateway/keyservice) destroys its materials here first and only then
// appends the DeleteKey service event, so once the ledger says deleted no
// file in the data directory holds anything that opens the material, even
// with the root key and the whole stream. A crash in between leaves a key
// past its deletion date without material: nothing may use it,
// CancelKeyDeletion refuses it, and the next scheduler run records the
// deletion. DeleteImportedKeyMaterial takes the other order — record,
// destroy, answer — because nothing would finish it after a crash between
// a destruction and its event (the key would look usable with its material
// gone): a crash after the event leaves a recorded deletion that the
// start-up sweep completes before the restarted server answers anything,
// and a destruction that fails is answered KMSInternalException and
// retried every scheduler run. tests/shred_test.go kills keyledger serve repeatedly around due
// deletions and after every kill scans every file for each deleted
// material's key and tries to decrypt its old ciphertext offline with the
// root key and everything found.
//
// Materials stored before version 2 (wrapped only under the root key) still
// load; they keep the old guarantee (secure delete in the bucket).
//
// The store never holds plaintext key material: Put and Get take and return
// root-wrapped bytes. A Store is safe for concurrent use.
package material
