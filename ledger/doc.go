// Package ledger is keyledger's system of record: an append-only sequence
// of hash-chained events on JetStream, written by every instance at once
// and read back, authenticated and linked, by every reader.
//
// # What it owns
//
// A Ledger is the chains over its segment streams (<Stream>, <Stream>_1,
// …) and the base bucket (<Stream>_BASE) that says where the live ledger
// starts once archived segments were removed. Open finds the streams (and
// creates the first), Replay or ReplayFrom folds what they hold, Start
// starts the follower and the writer, Append and AppendChange commit an
// event. What vouches for the chain
// from beside it lives in its own packages: signed checkpoints, the
// checkpointer and the Merkle tiles in package checkpoint, the live feed
// in package feed, projection snapshots in package snapshot, archives of
// removed segments in package segment.
//
// # Chains and subjects
//
// Several instances write one ledger without taking turns. The stream
// carries several hash chains (package chain), one per subject of the
// current segment stream (segment 0 shown; segment n puts ".n" after
// Subject):
//
//	<Subject>             the legacy chain: ledgers written before chains
//	<Subject>.w.<writer>  the data chain of one writer (instance)
//	<Subject>.c.<p>       control chain p of chain.Partitions
//
// The stream sequence is the one total order: every instance folds every
// message in it, so every instance's state is the same pure fold (replay ==
// live), and the Merkle tree's leaves are the accepted events in that order
// (one tree, one signed checkpoint over every chain). Existing ledgers keep
// their legacy chain, readable and verifiable forever; new events go to the
// new chains, which start at index 0.
//
// # Writing: data events
//
// Append records an event that changes no key state (a cryptographic
// operation, a read, a refusal: the bulk) on this instance's data chain.
// One goroutine writes it (group commit): it takes every queued event (up
// to a limit), links each to its predecessor on the chain, packs them into
// one JetStream message, signs it with the instance's writer key for its
// place on the chain (the chain's previous message) and publishes it with
// Nats-Expected-Last-Subject-Sequence, with a Nats-Msg-Id derived from its
// first event. Only this instance writes its subject, so appends never
// conflict: a second process holding the same writer key is refused by the
// header, never merged into a fork; so is garbage another NATS client put
// on the subject, which the fold quarantines, after which the writer links
// the batch again after the chain's last valid event and publishes it
// after the garbage. The next batch is published as soon as JetStream
// acknowledges the previous one.
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
// Why one group commit in flight, not several: pipelining was built and
// measured (2026-12-05) as lanes, each writer writing 1–3 data chains with
// a commit in flight on each, and dropped. JetStream stores and fsyncs a
// stream's messages one at a time, so two commits in flight are two
// smaller messages and two fsyncs where one would do: 1,000 Encrypts on 8
// connections served 2,773–3,639/s with two lanes against 3,835–4,318/s
// with one, and at 64 connections the two were equal within noise
// (CPU-bound: the server used 1.2 of 2 cores and the load generator most
// of the rest). Group commit already fills the writer's idle time: what
// queues during one round trip is the next batch.
//
// # Writing: key-state changes
//
// AppendChange records a key-state change. The caller validated it
// against the projections at Positions, taken before it read them;
// AppendChange appends the event to the control chain of its first
// partition key, and only if no chain it depends on (the partitions of
// all its keys) has moved since: Nats-Expected-Last-Subject-Sequence on
// each. A change that depends on one partition is one message. One that
// depends on several (an alias moved between keys, an alias created for or
// deleted from a key) is one JetStream atomic batch: the change on its own
// chain and a Fence event on every other, each message with its own
// expectation, all stored or none. So a concurrent change on any of those
// chains makes one of the two fail. A change that lost (ErrConflict) was
// not stored; AppendChange first folds what took its place, so the caller
// validates again against the new state and retries (package keyservice
// does, inside the server). A change that depends on every key names
// EveryPartition: it fences every control chain. Control appends are one
// change per message (plus its fences): an instance serializes its changes
// anyway, and AWS allows a few a second.
//
// Turns on a busy chain are fair (contention.go): the instance that just
// won would otherwise win every race, since the loser must fold the
// winner's change before it can try again. A change that loses publishes a
// contention notice (core NATS, <Subject>.contended, signed by its
// writer key); the other instances hold their next change for as long
// as it asks (three of its round trips, 5–50 ms). A notice is a courtesy, not a lock: losing one costs a
// turn, and one not signed by a registered writer is ignored.
//
// # Following, and read-your-writes
//
// One goroutine per instance folds the stream in order (follow.go): its own
// messages from the copy it published, others' by direct get, woken by the
// acknowledgements of its own appends, by a notice every instance sends
// after each append (core NATS, not stored) and, as a fallback, every
// FollowInterval. A request is answered only once this instance has folded
// through its own message: it reads its own writes. Other instances see a
// change once they fold it, usually within a millisecond or two of its
// acknowledgement (README: measured lag); like AWS KMS, keyledger is
// eventually consistent across instances for everything but the checks a
// change makes before it is stored, which are linearizable.
//
// A server cut off by a partition falls silent: the instance moves to
// another server after two unanswered pings (package backend), and ends
// what it had in flight on the lost connection at once rather than at its
// timeout. If a publish fails, the writer waits until the fold has read
// what the stream holds: its own message, stored after all, settles the batch;
// otherwise the batch failed and nothing happened. A publish no server
// answers is sent again every second; once a commit has gone StallTimeout
// without any answer (a server cut off from its quorum), requests fail at
// once with ErrUnavailable while a commit is in flight, until one is
// acknowledged or Reachable (readiness) finds the stream's leader in touch
// with a quorum again. A replica cut off answers a look at the stream's
// end from what it holds: Reachable counts only the leader's. A cluster
// electing the stream's leader answers "no responders", and requests wait
// for the election (stall.go). A direct get a cut-off replica was offered
// is asked of the stream's leader after a short patience (read.go).
// A full disk fails requests at once with ErrStorage (Config.Storage), and
// writes resume when space returns.
//
// # Reading
//
// Every reader goes through one fold (chain.Folder): each message must be
// signed for its place by a writer the ledger registered, and its events
// must link to the last valid event of their chain. A message that fails is
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
// for them (CheckBaseWriters; a writer revoked since the base was signed
// is vouched for by the revoked writers the anchor names, and the base
// carries those revoked before it, so a fold from it still refuses them,
// package chain). Readers of the history do not handle the
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
// over each message's place on its chain, checked by every reader, and
// the streams deny deletes and purges, so a gap is loss, never
// housekeeping. A message's subject is taken from what the server says it
// stored, never from headers the publisher chose.
//
// # Concurrency
//
// A Ledger is safe for concurrent use after Start. ReplayFrom and Import
// run before Start, on one goroutine; Replay before Start builds the
// follower's fold, after it walks with a fold of its own. OnCommit runs on
// the follower goroutine, in stream order, and must not call Append.
package ledger
