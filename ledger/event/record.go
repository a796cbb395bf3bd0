package event

// Record is one committed event as the ledger stored it: the decoded event,
// the exact bytes its hash covers, and where on the stream it sits. Folds take
// records rather than events so they can name a stream position and check
// links without importing the ledger's transport.
type Record struct {
	Seq   uint64 // stream sequence of the message that holds it
	Event *Event
	Raw   []byte // the exact stored bytes
	Hash  Hash
}
