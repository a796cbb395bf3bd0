// Package backup writes a consistent backup of a keyledger deployment into
// a directory and restores one, verifying it before anything can serve it.
//
// # What a backup holds (Format keyledger-backup/2)
//
//	manifest.json           format, created, the cut (events, last event's
//	                        index, time and hash, checkpoint), and the size
//	                        and SHA-256 of every other file
//	manifest.sig            the manifest signed with the backup signing key
//	                        (manifest.go)
//	ledger/events.jsonl     every event up to the cut, its exact stored
//	                        bytes, one a line, then the rest of the message
//	                        the cut falls in, if any (not restored)
//	ledger/signatures.jsonl the writer signature of every message those
//	                        events came from (offline.SignaturesFile)
//	ledger/checkpoint       the signed checkpoint whose tree size is the cut
//	checkpoints.json        every stored signed checkpoint up to the cut
//	materials.jsonl         each live material: id and root-wrapped bytes
//	base.json, snapshot     after removed (archived) segments only: where
//	                        the live ledger starts and the signed snapshot
//	                        its state starts from (base.go)
//
// ledger/ is an offline export: `keyledger audit verify --offline DIR/ledger`
// checks it, and it serves as a deletion journal.
//
// # What a restore trusts
//
// Nothing in the directory by itself (DESIGN rule 14). The manifest must
// verify with the backup verifier key, every event must be in a message a
// registered writer signed (chain.Folder, the rule of every reader), and
// the cut is a signed checkpoint the escrowed checkpoint verifier key
// accepts: a restore proves that no event was changed, dropped, inserted,
// reordered or cut off. Materials are those the ledger at the cut still
// refers to, each checked against the ledger's commitment (the SHA-256 of
// its root-wrapped bytes) when written and again when restored. A genuine
// backup older than what the operator knows of (a time, a witness state) is
// refused as a rollback unless the operator allows it (fresh.go).
//
// # What a backup writes where it reads
//
// Nothing: Write only reads the ledger, the stored checkpoints and the
// materials (a checkpoint it signs itself goes into the backup only), so
// it runs under an identity that cannot write.
//
// In plaintext terms: no plaintext key material, no root key and no
// per-material key. Materials are kept wrapped under the root key — the
// form the ledger commits to — with the outer per-material layer
// (crypto/shred) taken off; a restore seals each again under a fresh
// per-material key. A backup is therefore exactly as secret as the root
// key that opens it (escrow the two apart), and a material in a backup
// lives as long as the backup does: deletion reaches a backup only when it
// is destroyed (README "Backups").
//
// # Deleted stays deleted
//
// A restore takes an optional deletion journal: the ledger of a deployment
// that survived the disaster, as an offline export directory (`keyledger
// audit export --out DIR`). It is verified as any export (journal.go):
// every event signed by a registered writer and covered by its checkpoint,
// which the verifier key must accept; its first events must be the
// backup's (same Merkle root at the cut). Every material it records
// destroyed after the cut is not restored, and its deletion event is
// recorded again on the restored ledger. Without a journal a restore
// brings back the deployment exactly as it was at the cut, including
// material destroyed later.
//
// # Restoring a deployment
//
// Open verifies a backup; Backup.RestoreInto writes it into an empty NATS
// deployment or a new data directory, which it builds beside the target
// and renames into place only once the restored ledger and materials
// verified, so nothing can serve a half-restored directory and a failed
// restore leaves nothing behind.
//
// Functions are safe to call concurrently on different directories.
package backup
