// Package node assembles one keyledger instance from its parts: it opens the
// ledger and material store on a backend, rebuilds the key state by replaying
// the ledger (checking every link), starts the group-commit writer, the
// scheduler and the AWS JSON gateway. cmd/ and the end-to-end tests both
// start instances through it, so they run the same wiring.
//
// One process may serve several regions, one Node each behind one HTTP
// listener whose front routes by the SigV4 credential scope (regions.go),
// and regions exchange multi-Region keys, within the process or with other
// deployments (multiregion.go).
//
// # Start-up
//
// An instance snapshots its projections (package resume: key state with
// usage counters, compliance aggregates, the Merkle tree's size, root and
// right edge, its position and the writers registered) every 100,000
// events or 10 minutes (Snapshots), off the request path, into package
// snapshot's store, signed with its writer key. At start the newest
// snapshot whose covered event is still the ledger's event is restored and
// only the tail after it is folded and link-checked; a corrupt, truncated,
// foreign or untrusted snapshot is skipped with a "snapshot skipped" log
// line and an older one tried, then a full replay. The whole chain is
// checked in the background ("background chain verification" log lines,
// rate-limited to 200,000 events/s); its outcome is the compliance
// report's audit-integrity check, which warns until it finishes.
//
// The Merkle tree at start-up: a snapshot holds the tree's right edge (the
// partial tile of each level, at most 8 KiB a level) and is stored only
// after every completed tile is in the tile bucket (package checkpoint),
// so the edge and the stored tiles restore the tree without reading an
// event, whatever the history's length. Start-up checks the restored root
// against the snapshot's and reads the first and last stored tile of each
// level, checked against the edge, and logs which path it took
// ("projections restored from snapshot … merkle_from=frontier"). A
// snapshot without an edge (older builds) or a tile bucket that lost tiles
// makes it rehash the events under the snapshot instead
// (merkle_from=events), storing tiles as they complete (at most 512, 4 MiB,
// wait in memory) and so writing lost ones again; it then takes a new
// snapshot at once, so the next start is fast again. A tile lost or
// changed while serving is rebuilt from the events under it when a proof
// needs it, checked against the edge and stored again; if that fails too,
// the proof is refused (HTTP 500), never wrong.
package node
