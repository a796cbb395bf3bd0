// Package checkpoint keeps what vouches for the ledger from beside it: the
// signed checkpoints of its Merkle tree (package merkle), the Checkpointer
// that makes them, the tiles that hold the tree's hashes, and the check
// that a ledger still extends its newest checkpoint.
//
// # What it owns
//
// Store is the checkpoint streams, thinned (Thinning): every checkpoint of
// the recent window in <Stream>_CHECKPOINTS_RECENT, forgotten by age, and
// one per hour plus those kept on purpose (Keep: at shutdown, the
// archive a prune rests on) in <Stream>_CHECKPOINTS, kept for good; both
// deny deletes and purges. Open creates or opens them, OpenExisting opens
// them without creating or changing them (what a subscribe-only audit
// identity may do). Checkpointer signs a checkpoint (a C2SP tlog-checkpoint note)
// every interval, or on demand, once the tree has grown, after storing the
// tree's completed tiles, so a tree restored from a frontier at or before
// a checkpoint finds its tiles. Tiles is the KV bucket <Stream>_TILES that
// keeps the tree's full tiles, keyed by their C2SP tile path, so memory
// holds only the tree's right edge; tiles are derived from the ledger, and
// a missing or wrong one is written again when the ledger is replayed.
//
// # Why checkpoints
//
// A ledger must extend the newest signed checkpoint stored beside it: hold
// at least as many events, and its first Size events must rebuild the
// signed root (CheckExtends; a *MismatchError otherwise). A hash chain
// alone cannot see a tail cut off cleanly (delete the last blocks and the
// index, and what remains still links); a checkpoint can. Start-up and
// audit verify check it. What a checkpoint does not cover yet (the events
// of the last checkpoint interval) only a witness outside the box can
// vouch for (package witness).
//
// # Security
//
// The package never sees secrets: checkpoints hold a tree size, a root and
// the registered writers' public keys. Newest takes only checkpoints that
// verify with the given verifier key; several instances sharing a ledger
// may each sign with their own key, and a forged note is skipped, never
// trusted. Without a key the newest is taken unverified, which can only
// cause a false alarm, never hide a truncation.
//
// # Concurrency
//
// Store, Tiles and Checkpointer are safe for concurrent use; a
// Checkpointer makes one checkpoint at a time.
package checkpoint
