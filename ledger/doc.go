// Package ledger is keyledger's system of record: an append-only, hash-chained
// sequence of events on a JetStream stream.
//
// # Writing
//
// One goroutine writes the chain (group commit). Requests call Append, which
// queues their event and waits. The writer takes every queued event (up to a
// limit), links each to its predecessor's hash, packs them into one JetStream
// message and publishes it with the expected-last-sequence header, so a second
// writer on the same stream is rejected by JetStream itself (ErrConflict),
// never merged into a fork. Each message carries a Nats-Msg-Id derived from its
// first event, so a retried publish is deduplicated. Only after JetStream
// acknowledges the message (stored, and with the embedded default fsynced)
// does the writer hand the records to the commit hook (the projections) and
// release the waiting requests. Nothing is ever answered early.
//
// If a publish fails, the writer reads back what the stream actually holds
// after its last known position: its own message if it was stored after all,
// or another writer's messages, which it links and hands to the commit hook as
// the truth. Events that did not reach the stream fail with an error and
// nothing happened.
//
// # Reading
//
// Replay streams every event in order and checks every link as it goes, so a
// ledger whose chain is broken refuses to load (fail closed). Messages exposes
// the raw messages for chain.Verify.
//
// An idle writer also follows the stream (every FollowInterval), folding
// what other instances appended, so instances sharing a deployment converge.
//
// # Beside the chain
//
// Checkpoints stores the signed checkpoints of the ledger's Merkle tree
// (package merkle) in their own stream, and a Checkpointer signs one every
// interval (or on demand) when the tree has grown, after storing the
// tree's completed tiles; Tiles keeps those tiles (the tree's hashes) in a
// KV bucket beside the ledger, so memory holds only the tree's right edge;
// Feed announces committed events on
// per-account/key/event NATS subjects for live subscribers, and
// EventsFrom/EventsSince read the history back by index or time.
//
// A Ledger is safe for concurrent use. It never sees secrets: events carry
// wrapped-material commitments only.
package ledger
