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
// Put writes and fsyncs the key's slot before the sealed bytes are stored,
// and the caller commits to the material in the ledger only after Put.
// Destroy zeroes the slot and fsyncs first, then erases the bucket entry with
// secure delete as defence in depth. Once a slot is zeroed, no file holds
// anything that opens the sealed bytes, whatever copies the bucket's block
// files keep, even for someone holding the root key and the whole ledger.
// Crash points: a slot written but never committed (an orphan) is reclaimed
// by Reclaim at start-up; so is a damaged slot (bad checksum) naming a
// material the ledger does not hold live. A damaged slot of a live material
// is kept and reported: zeroing it would destroy a key over a flipped bit.
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
// deletion. tests/shred_test.go kills keyledger serve repeatedly around due
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
