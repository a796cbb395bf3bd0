package event

// TypeSegmentRemoved names the event that records an archived prefix of
// the ledger being removed from the deployment.
const TypeSegmentRemoved = "SegmentRemoved.v1"

// SegmentRemoved records that events [FirstIndex, NextIndex) were removed
// from the live ledger after being archived: the live ledger's base from
// then on is event NextIndex, whose predecessor's hash is LastHash. The
// archive is named by the signed checkpoint it carries (size and root) and
// the SHA-256 of its events file, so an auditor holding the archive can
// tell it is the one that was removed. Through is the last stream sequence
// removed; RetentionDays the retention that was checked.
type SegmentRemoved struct {
	FirstIndex     uint64 `json:"firstIndex"`
	NextIndex      uint64 `json:"nextIndex"`
	LastHash       string `json:"lastHash"`
	Through        uint64 `json:"through"`
	CheckpointSize uint64 `json:"checkpointSize"`
	CheckpointRoot string `json:"checkpointRoot"`
	EventsSHA256   string `json:"eventsSha256"`
	RetentionDays  uint64 `json:"retentionDays"`
}

func (*SegmentRemoved) Type() string { return TypeSegmentRemoved }
func (b *SegmentRemoved) encode(w *writer) {
	w.uintAlways("firstIndex", b.FirstIndex)
	w.uintAlways("nextIndex", b.NextIndex)
	w.str("lastHash", b.LastHash)
	w.uintAlways("through", b.Through)
	w.uintAlways("checkpointSize", b.CheckpointSize)
	w.str("checkpointRoot", b.CheckpointRoot)
	w.str("eventsSha256", b.EventsSHA256)
	w.uintAlways("retentionDays", b.RetentionDays)
}
