// Package ledger is keyledger's system of record: an append-only,
// hash-chained sequence of events on JetStream, written by one goroutine
// per instance and read back, authenticated and linked, by every reader.
//
// # What it owns
//
// A Ledger is the chain over its segment streams (<Stream>, <Stream>_1, …)
// and the base bucket (<Stream>_BASE) that says where the live ledger
// starts once archived segments were removed. Open finds the streams (and
// creates the first), Replay or ReplayFrom folds what they hold, Start
// starts the writer, Append commits an event. What vouches for the chain
// from beside it lives in its own packages: signed checkpoints, the
// checkpointer and the Merkle tiles in package checkpoint, the live feed
// in package feed, projection snapshots in package snapshot, archives of
// removed segments in package segment.
//
// # Writing
//
// One goroutine writes the chain (group commit). Requests call Append,
// which queues their event and waits. The writer takes every queued event
// (up to a limit), links each to its predecessor's hash, packs them into
// one JetStream message, signs it with the instance's writer key for its
// stream sequence, and publishes it with the expected-last-sequence
// header, so a second writer on the same stream is refused by JetStream
// itself (ErrConflict), never merged into a fork. Each message carries a
// Nats-Msg-Id derived from its first event, so a retried publish is
// deduplicated. Only after JetStream acknowledges the message (stored, and
// with the embedded default fsynced) does the writer hand the records to
// the commit hook (the projections) and release the waiting requests.
// Nothing is ever answered early.
//
// Why group commit: with JetStream fsyncing every stored message (the
// embedded default, package embedded), one message per request would cap
// an instance at a few thousand requests a second, each paying an fsync.
// A group instead holds whatever queued while the previous round trip was
// in flight: under 64 concurrent clients about 20 events, so one fsync
// serves about 20 answers. Throughput comes from batching, never from
// answering early. Publishing while disconnected fails at once rather than
// being buffered by the client and sent later.
//
// If a publish fails, the writer reads back what the stream actually holds
// after its last known position: its own message if it was stored after
// all, or another writer's messages, which it authenticates, links and
// hands to the commit hook as the truth. Events that did not reach the
// stream fail with an error and nothing happened. A full disk fails
// requests at once with ErrStorage (Config.Storage), and writes resume
// when space returns.
//
// Two instances appending at once: the loser links a batch that changes
// no key state after the winner's events and publishes it again; a batch
// that changes key state was validated against the old state and fails
// with ErrConflict. The loser asks its peers, over core NATS, to hold
// their next batch briefly, so a busy winner cannot starve it. An idle
// writer also follows the stream (every FollowInterval), folding what
// other instances appended, so instances sharing a deployment converge.
//
// # Reading
//
// Every reader goes through one fold (chain.Folder): each message must be
// signed for its stream sequence by a writer the ledger registered, and
// its events must link to the last valid event. A message that fails is
// quarantined: never applied, counted, logged as an alarm, and skipped by
// every reader of the history; it cannot stop the service. Replay streams
// every message in order from where the live ledger starts; ReplayFrom
// continues from a snapshot (Resume). Reads never wait without bound: a
// message the stream claims but cannot produce is an *UnreadableError
// naming it, and stream sequences no segment holds are a
// *MissingSegmentError.
//
// # Segments and the removed prefix
//
// The chain runs over segment streams sharing one sequence space: segment
// 0 is <Stream> on subject keyledger.events (a ledger from before segments
// is segment 0 unchanged), segment n is <Stream>_<n> on keyledger.events.<n>,
// created with JetStream's FirstSeq set to the previous segment's last
// sequence + 1, so writer signatures, quarantines, snapshots and
// checkpoints keep speaking one sequence space (segments_probe_test.go
// checks FirstSeq and expected-last-sequence on the real server). The
// writer rolls to a new segment at a group-commit boundary, by period or
// size: it seals the current stream (a sealed stream takes no message),
// folds what it holds, then creates the next. An instance that has not
// seen the roll has its publish refused (sealed), finds the new segment
// and publishes there, so two instances on one ledger neither fork nor
// lose an acknowledged write. A roll costs a few round trips (about 50 ms
// on a 2-core machine) during which that writer holds its batch. Readers
// find segments by listing the streams on keyledger.events.*; a sequence
// gap between segments, or a read of sequences no segment holds, is an
// error naming them, never a skip. Once an archive holds the
// oldest whole segments (package segment), they may be removed: a
// SegmentRemoved event records the removal, then a base signed by the
// writer is stored, then the streams are deleted. The live ledger then
// starts at that base; a base is accepted only with its SegmentRemoved
// event, and its writers only when an anchor outside the bucket vouches
// for them (CheckBaseWriters). Readers of the history do not handle the
// base: FirstIndex says where the live history starts, and Folder, MemTree
// and TiledTree give a fold and Merkle trees that already hold what the
// removed prefix contributes; Replay, Messages and AuditAgainst start
// there by themselves. Base itself is for the protocols that record and
// compare bases (archive, removal, export; package segment). Key state
// lives in events, so an instance starts after a removal only from a
// snapshot at or after the base, and refuses to start without one. A
// segment stream deleted by hand (without a SegmentRemoved) is refused at
// Open, naming the missing stream sequences.
//
// # Storage
//
// The streams deny deletes and purges. Their blocks are S2-compressed on
// disk by JetStream (Config.Uncompressed, serve --ledger-compression none,
// turns it off): compression is below the stream, which serves back
// exactly the bytes written, so every hash still covers the exact stored
// event bytes.
//
// # Security
//
// A Ledger never sees secrets: events carry wrapped-material commitments
// only. It trusts no transport: authorship is proven by writer signatures
// over each message's place in the stream, checked by every reader, and
// the streams deny deletes and purges, so a gap is loss, never
// housekeeping.
//
// # Concurrency
//
// A Ledger is safe for concurrent use after Start. ReplayFrom and Import
// run before Start, on one goroutine; Replay before Start builds the
// writer's fold, after it walks with a fold of its own. OnCommit runs on
// the writer goroutine, in chain order, and must not call Append.
package ledger
