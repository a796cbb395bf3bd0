package cloudtrail

import "github.com/keyledger/keyledger/ledger/event"

// multiRegion fills what CloudTrail shows of the multi-Region key events,
// with the other region's event id (sourceEventId) for cross-reference:
// either region's trail leads to the other's.
func multiRegion(e *event.Event, p map[string]any, out *Record) {
	add := func(kv ...any) {
		if out.AdditionalEventData == nil {
			out.AdditionalEventData = map[string]any{}
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out.AdditionalEventData[kv[i].(string)] = kv[i+1]
		}
	}
	switch b := e.Body.(type) {
	case *event.KeyCreated:
		if b.MultiRegion {
			p["multiRegion"] = true
		}
	case *event.KeyReplicated:
		p["replicaRegion"] = b.ReplicaRegion
		p["bypassPolicyLockoutSafetyCheck"] = b.BypassPolicyLockoutSafetyCheck
		if b.Description != "" {
			p["description"] = b.Description
		}
	case *event.ReplicaKeyCreated:
		p["keySpec"], p["keyUsage"], p["origin"], p["multiRegion"] = b.KeySpec, b.KeyUsage, b.Origin, true
		if b.Description != "" {
			p["description"] = b.Description
		}
		add("sourceRegion", b.SourceRegion, "sourceEventId", b.SourceEventID, "primaryRegion", b.PrimaryRegion)
	case *event.MultiRegionKeySynchronized:
		add("sourceRegion", b.SourceRegion, "sourceEventId", b.SourceEventID, "primaryRegion", b.PrimaryRegion,
			"syncVersion", b.Version)
	case *event.ReplicaAcknowledged:
		add("replicaRegion", b.Region, "sourceEventId", b.SourceEventID, "syncVersion", b.Version, "replicaDeleted", b.Deleted)
	case *event.PrimaryRegionUpdated:
		p["primaryRegion"] = b.PrimaryRegion
	case *event.PeerRegionRegistered:
		add("peerRegion", b.Region, "writerId", b.WriterID)
	}
}
