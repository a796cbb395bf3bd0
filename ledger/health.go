package ledger

import "context"

// LastStreamSeq asks JetStream for the ledger stream's last sequence. An
// error means the ledger cannot be reached; a sequence beyond Head().Seq
// means this instance has not yet folded everything stored.
func (l *Ledger) LastStreamSeq(ctx context.Context) (uint64, error) {
	_, last, err := l.liveRange(ctx)
	return last, err
}

// Writing reports whether the writer goroutine is running (Start was
// called and it has not stopped).
func (l *Ledger) Writing() bool {
	select {
	case <-l.done:
		return false
	default:
		return true
	}
}

// Folded is the stream sequence through which this instance folded the
// ledger (accepted or quarantined) and applied it: its lag behind
// LastStreamSeq is how far its projections are behind the stream.
func (l *Ledger) Folded() uint64 {
	if l.started.Load() {
		return l.folded.Load()
	}
	return l.foldThrough()
}
