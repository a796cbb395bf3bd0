package backup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/offline"
)

// signedEvents reads an offline export's events (offline.EventsFile) as
// the ledger messages they came from, as described by their writer
// signatures (offline.SignaturesFile), and folds each message with a
// chain.Folder: the one rule every reader of the live ledger applies
// (signed by a registered writer for its place on its chain, linked to
// its chain's last valid event). Nothing in the files is trusted before it folded.
//
// Both files are read one line at a time through lineReaders, which hash
// every byte read, so a caller also learns each file's digest; memory is
// one message.
type signedEvents struct {
	events, sigs *lineReader
	folder       *chain.Folder
	messages     int
}

// SignatureError means an export's events are not what registered
// writers signed: a message that does not fold (unsigned, signed by an
// unregistered key, badly signed, not linking), or lines no signature
// covers.
type SignatureError struct {
	Line   int    // first line of EventsFile concerned (from 1)
	Reason string // what is wrong
}

func (e *SignatureError) Error() string {
	return fmt.Sprintf("event line %d: %s", e.Line, e.Reason)
}

// next folds the next message and returns its records, or io.EOF once
// both files ended together. The records' bytes are the message's own and
// stay valid.
func (s *signedEvents) next() ([]event.Record, error) {
	line, err := s.sigs.next()
	if errors.Is(err, io.EOF) {
		if _, err := s.events.next(); !errors.Is(err, io.EOF) {
			if err != nil {
				return nil, err
			}
			return nil, &SignatureError{Line: s.events.line, Reason: "no writer signature (" + offline.SignaturesFile + ") covers this event or any after it"}
		}
		return nil, io.EOF
	}
	if err != nil {
		return nil, err
	}
	var ms offline.MessageSignature
	if err := json.Unmarshal(line, &ms); err != nil || ms.Events < 1 {
		return nil, &SignatureError{Line: s.events.line + 1, Reason: fmt.Sprintf("%s line %d is malformed", offline.SignaturesFile, s.sigs.line)}
	}
	first := s.events.line + 1
	var data []byte
	for range ms.Events {
		raw, err := s.events.next()
		if errors.Is(err, io.EOF) {
			return nil, &SignatureError{Line: first, Reason: fmt.Sprintf("%s line %d covers events past the end of %s", offline.SignaturesFile, s.sigs.line, offline.EventsFile)}
		}
		if err != nil {
			return nil, err
		}
		data = append(append(data, raw...), '\n')
	}
	recs, err := s.folder.FoldAfter(chain.Message{Seq: ms.Seq, Chain: ms.Chain, Data: data, Writer: ms.Writer, Signature: ms.Signature, Imported: ms.Imported}, ms.After)
	if err != nil {
		var q *chain.Quarantine
		if errors.As(err, &q) {
			return nil, &SignatureError{Line: first, Reason: fmt.Sprintf("the message of events %d–%d (stream sequence %d, writer %q) is not one a registered writer signed and linked: %v",
				first, first+ms.Events-1, ms.Seq, ms.Writer, q.Reason)}
		}
		return nil, err
	}
	s.messages++
	return recs, nil
}
