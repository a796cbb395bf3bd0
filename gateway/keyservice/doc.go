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
// On one instance, state-changing operations hold the service's lock
// exclusively from validation until their event is folded; every other
// operation holds it shared until its event is folded. So no Encrypt is
// ever recorded after the DisableKey that should have stopped it, and two
// CreateAlias calls cannot both claim a name. Changes are rare (AWS's
// quota is 5/s), uses are not; the shared side is cheap.
//
// Across instances, key-state changes are linearizable (changing, in
// change.go): a change takes the ledger's fold positions (ledger.Positions)
// before it reads any state, validates against the projections, and
// appends its event (or its refusal: a refusal is an answer about the state
// too) with ledger.AppendChange, fenced on the partitions of everything it
// read: the key it names (also when no such key exists: NotFound is an
// answer about that key), the alias it names, and the key an alias it
// read points to. If another instance changed any of them meanwhile, the
// ledger refuses the append and folds what took its place, and the
// operation runs again against the new state: it may now be refused with
// the proper AWS error, recorded as such. A caller never sees an error for
// losing a race; after maxChangeAttempts lost races in a row it gets
// ThrottlingException, retryable, as AWS answers changes to a "hot" key
// (never KMSInternalException).
//
// Operations that span keys stay correct because every key they read is
// in the fence: CreateAlias fences the alias and its target key,
// DeleteAlias the alias and the key it pointed to, UpdateAlias the alias,
// its old key and its new key (an alias moved between keys); the count of
// a key's aliases is exact because every alias change of a key writes to
// its chain. A grant lives on its key's chain whichever account the
// grantee or the caller is in (cross-account access is decided by that
// key's policy and grants, and by identity policies, which are not ledger
// state); RetireGrant and RevokeGrant fence the grant's key, and a grant
// token this instance does not know is looked up again after it folded
// everything stored so far (Ledger.Sync), since a token names no key. The
// scheduler's DeleteKey, RotateKey and DeleteExpiredKeyMaterial are
// changes like any other, so a due deletion is recorded once even if two
// schedulers find it due; their conditions read the scheduler's lease
// record too (the service partition), so a holder that lost the lease
// records nothing. Retiring a root key version depends on every key's
// material: it is fenced on every partition (one atomic batch). Unsealing
// and sealing are recorded on the data chain of the instance they
// happened on. Seed files are applied by one instance at start-up and
// recorded on its data chain. Identity policies come from the principals file, the same on
// every instance (each records it, PrincipalsConfigured).
//
// Cryptographic operations and reads are recorded on the instance's own
// data chain without a fence: they are checked against this instance's
// projection, which is at most the follow lag behind the newest change on
// another instance, as AWS KMS documents its own eventual consistency. A
// key or alias this instance does not know is looked up again once it
// folded what the ledger holds (resolve, caughtUp), so one created on
// another instance a moment ago is found.
// ReEncrypt is one of them, on two keys: it changes no state, so there is
// nothing for a fence to protect; a concurrent DisableKey of either key on
// another instance orders before or after it like any Decrypt or Encrypt
// would.
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
