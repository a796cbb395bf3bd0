package event

// TypeSchedulerLeaseTaken is the stable type string of SchedulerLeaseTaken.
const TypeSchedulerLeaseTaken = "SchedulerLeaseTaken.v1"

// SchedulerLeaseTaken records an instance taking over the scheduler (due
// deletions, rotations and expiries, root key rewrapping). Holder names the
// instance, Token is its lease's revision in the lease bucket, and
// Supersedes is the hash of the SchedulerLeaseTaken event it follows (empty
// for the first). The newest one in the ledger is the fence: the scheduler
// appends due work only while its own is the newest, checked at the place
// the work's event takes in the chain, so an instance that lost its lease
// (stopped, paused, cut off) cannot act once another took over.
type SchedulerLeaseTaken struct {
	Holder     string `json:"holder"`
	Token      uint64 `json:"token"`
	Supersedes string `json:"supersedes,omitempty"`
}

func (*SchedulerLeaseTaken) Type() string { return TypeSchedulerLeaseTaken }
func (b *SchedulerLeaseTaken) encode(w *writer) {
	w.str("holder", b.Holder)
	w.uintAlways("token", b.Token)
	w.str("supersedes", b.Supersedes)
}
