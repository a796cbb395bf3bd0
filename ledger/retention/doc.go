// Package retention runs the ledger's retention protocols on a live
// deployment: Archive writes the oldest events as a self-verifying archive
// (package segment's format), and Prune removes the whole segments an
// archive holds, once they are older than the retention.
//
// Prune is destructive, so it is one function with its order fixed: it
// checks the removal (the archive starts at the live base, ends at an
// event the live ledger holds with the same hash, at the end of a sealed
// segment, and everything in it is older than the retention), appends a
// SegmentRemoved event (acknowledged before anything else happens), stores
// the new base signed by the writer, and only then deletes the segment
// streams. Run again after a crash it finishes what is left.
//
// SegmentRemoved is the one event this package builds: the ledger reads
// it back to accept the base (ledger.Ledger.StoreBase, and Open), and
// every field of it is derived from the archive. Every other event is
// built by the gateway's application service (see tests/arch_test.go).
//
// Archives hold the checkpoint verifier key's word for the events, so the
// package never needs a signing key; Prune needs the deployment's writer
// key, in the ledger it is given. It never holds key material.
//
// Functions hold no state; one call runs at a time per ledger.
package retention
