package event

// Record is one committed event as the ledger stored it: the decoded event,
// the exact bytes its hash covers, and where it sits. Folds take records
// rather than events so they can name a position and check links without
// importing the ledger's transport.
type Record struct {
	Seq   uint64 // stream sequence of the message that holds it
	Event *Event
	Raw   []byte // the exact stored bytes
	Hash  Hash
	// Pos is the event's position in the ledger: how many accepted events
	// come before it in stream order, on every chain (the leaf index of
	// the ledger's Merkle tree). Derived by the fold, never stored in the
	// event's bytes; on a ledger with only the legacy chain it equals
	// Event.Index.
	Pos uint64
	// Writer is the ID of the writer whose signature the message carries
	// ("" for an unsigned message of a ledger from before writers signed).
	Writer string
	// SignedAfter is the stream sequence of the previous message on the
	// event's chain, which the message's signature names (0 on the legacy
	// chain, whose messages are signed for their own stream sequence).
	SignedAfter uint64
}
