package offline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
)

// SignaturesFile holds, one JSON object a line in stream order, the writer
// signature of every ledger message the export's events came from:
// {"seq":N,"events":K,"writer":"<id>","signature":"<base64>"} covers the
// next K lines of EventsFile, which joined with "\n" (each line ended by
// one) are the message's exact bytes. Legacy unsigned messages have empty
// writer and signature. A message on one of the chains several writers
// write also names its chain and the stream sequence of the chain's
// previous message its signature names ("chain", "after"), and a restored
// message is marked "imported" (package chain).
const SignaturesFile = "signatures.jsonl"

// MessageSignature is one line of SignaturesFile.
type MessageSignature struct {
	Seq       uint64 `json:"seq"`
	Events    int    `json:"events"`
	Writer    string `json:"writer"`
	Signature string `json:"signature"`
	Chain     string `json:"chain,omitempty"`
	After     uint64 `json:"after,omitempty"`
	Imported  bool   `json:"imported,omitempty"`
}

// Signature is the line of SignaturesFile for message m, whose records
// (recs, as folded) the export holds k of.
func Signature(m chain.Message, recs []event.Record, k int) MessageSignature {
	ms := MessageSignature{Seq: m.Seq, Events: k, Writer: m.Writer, Signature: m.Signature, Chain: m.Chain, Imported: m.Imported}
	if len(recs) > 0 {
		ms.After = recs[0].SignedAfter
	}
	return ms
}

// WriterResult is what VerifyWriters established.
type WriterResult struct {
	Messages int               // messages whose signatures verified
	Writers  map[string]string // writers the exported ledger registers: ID → public key (base64)
	// Revoked are the writers it revoked, Known those and Writers.
	Revoked map[string]chain.Revocation
	Known   map[string]string
}

// VerifyWriters re-folds the exported events as the ledger's messages,
// with the rule every online reader applies (chain.Folder): each message
// must be signed, for the stream sequence it was stored at, by a writer the
// exported ledger itself registered before it; the first writer registers
// itself (on the chains several writers write: for its chain and the
// chain's previous message). Every event must be covered by exactly one
// message. The writers
// need no trust in the transport the export came over.
func VerifyWriters(events, signatures []byte) (WriterResult, error) {
	return VerifyWritersFrom(chain.NewFolder(), events, signatures)
}

// VerifyWritersFrom is VerifyWriters for events that continue a ledger
// folded by f (an archived segment after the previous one, a live ledger
// after its archived prefix).
func VerifyWritersFrom(f *chain.Folder, events, signatures []byte) (WriterResult, error) {
	var lines [][]byte
	if len(events) > 0 {
		lines = bytes.Split(bytes.TrimSuffix(events, []byte("\n")), []byte("\n"))
	}
	next, n := 0, 0
	for i, sl := range bytes.Split(bytes.TrimSuffix(signatures, []byte("\n")), []byte("\n")) {
		if len(sl) == 0 && len(signatures) == 0 {
			break
		}
		var ms MessageSignature
		if err := json.Unmarshal(sl, &ms); err != nil || ms.Events < 1 {
			return WriterResult{}, fmt.Errorf("%s line %d: malformed", SignaturesFile, i+1)
		}
		if next+ms.Events > len(lines) {
			return WriterResult{}, fmt.Errorf("%s line %d: covers events past the end of %s", SignaturesFile, i+1, EventsFile)
		}
		var data []byte
		for _, raw := range lines[next : next+ms.Events] {
			data = append(append(data, raw...), '\n')
		}
		m := chain.Message{Seq: ms.Seq, Chain: ms.Chain, Data: data, Writer: ms.Writer, Signature: ms.Signature, Imported: ms.Imported}
		if _, err := f.FoldAfter(m, ms.After); err != nil {
			var q *chain.Quarantine
			if errors.As(err, &q) {
				return WriterResult{}, fmt.Errorf("%s line %d (events %d–%d, stream sequence %d): %v", SignaturesFile, i+1, next+1, next+ms.Events, ms.Seq, q.Reason)
			}
			return WriterResult{}, err
		}
		next += ms.Events
		n++
	}
	if next != len(lines) {
		return WriterResult{}, fmt.Errorf("%d of %d events are not covered by a writer signature in %s", len(lines)-next, len(lines), SignaturesFile)
	}
	return WriterResult{Messages: n, Writers: f.Writers(), Revoked: f.State().Revoked, Known: f.Known()}, nil
}

// CheckNamedWriters reports an error unless every writer a checkpoint names
// (merkle.Checkpoint's Writers) is registered in the export, with the same key.
func CheckNamedWriters(named, registered map[string]string) error {
	ids := make([]string, 0, len(named))
	for id := range named {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if pub, ok := registered[id]; !ok || pub != named[id] {
			return fmt.Errorf("the signed checkpoint names writer %s, which the exported ledger does not register with that key", id)
		}
	}
	return nil
}
