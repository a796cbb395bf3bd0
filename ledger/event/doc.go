// Package event defines keyledger's ledger events, their canonical encoding
// and their hashes.
//
// # Canonical encoding (version 1)
//
// An event is stored as one line of JSON written by this package's own
// encoder, never by encoding/json, so its bytes are fixed by this
// specification and pinned by the golden vectors in testdata/:
//
//   - An object's members appear in the order the event's encode method
//     writes them, with no whitespace.
//   - Optional members (empty strings, zero numbers, false, empty maps and
//     lists, absent objects) are omitted. The envelope members v, index,
//     prev, time, type and op are always present.
//   - Strings are UTF-8. '"' and '\' are escaped with a backslash; bytes
//     below 0x20 and 0x7f are written as \u00XX with lower-case hex; invalid
//     UTF-8 is replaced by U+FFFD; everything else is written as is.
//   - Integers are decimal without leading zeros or exponent.
//   - Times are UTC, formatted 2006-01-02T15:04:05.000000000Z (always nine
//     fractional digits).
//   - String maps are objects with members sorted by byte order of the key.
//
// The envelope is
//
//	{"v":1,"index":N,"prev":HEX,"chain":C,"time":T,"type":TYPE,"op":OPERATION,
//	 "account":…,"region":…,"keyId":…,"actor":{…},"error":{…},"body":{…}}
//
// An event's hash is SHA-256 over exactly its stored bytes; index is its
// dense position on its chain and prev is the hash of the event before it
// on that chain (64 zeros for the first). chain names the chain the event
// belongs to ("w.<writer ID>" for a writer's data chain, "c.<p>" for a
// control chain; package chain) and is omitted for the legacy chain, so
// every event written before chains existed keeps its exact bytes
// (testdata/events.golden) and events of the new chains are pinned by
// testdata/chained.golden. It was added as an optional member, within
// version 1: a build that does not know it would still decode the event. A ledger
// message holds one or more events, each followed by a newline, which the
// canonical encoding never contains.
//
// Event types are plain versioned structs with stable type strings
// ("KeyCreated.v1"). Old types decode forever; a type this build does not
// know decodes to Unknown. Events never hold plaintext, data keys or
// plaintext key material: key material appears only as an id and a hash of
// its wrapped form.
package event
