package event

import "time"

// Stable type strings of the multi-Region key events.
const (
	TypeKeyReplicated              = "KeyReplicated.v1"
	TypeReplicaKeyCreated          = "ReplicaKeyCreated.v1"
	TypeMultiRegionKeySynchronized = "MultiRegionKeySynchronized.v1"
	TypeReplicaAcknowledged        = "ReplicaAcknowledged.v1"
	TypePrimaryRegionUpdated       = "PrimaryRegionUpdated.v1"
	TypePeerRegionRegistered       = "PeerRegionRegistered.v1"
)

// newMultiRegionBody is newBody for the multi-Region key events.
func newMultiRegionBody(typ string) Body {
	switch typ {
	case TypeKeyReplicated:
		return &KeyReplicated{}
	case TypeReplicaKeyCreated:
		return &ReplicaKeyCreated{}
	case TypeMultiRegionKeySynchronized:
		return &MultiRegionKeySynchronized{}
	case TypeReplicaAcknowledged:
		return &ReplicaAcknowledged{}
	case TypePrimaryRegionUpdated:
		return &PrimaryRegionUpdated{}
	case TypePeerRegionRegistered:
		return &PeerRegionRegistered{}
	}
	return nil
}

// Multi-Region keys. Related keys (a primary and its replicas, one per
// region, all with the key id mrk-…) share their material, spec, usage,
// origin and automatic rotation; each region records in its own ledger
// what happened to its own key, and names the other region's event it
// acted on (SourceEventID) so either audit trail leads to the other.
//
// On the primary's region: KeyCreated (MultiRegion), KeyReplicated
// (ReplicateKey), KeyRotated and KeyRotation{Enabled,Disabled} as for any
// key, ReplicaAcknowledged when a replica confirmed what it holds, and
// PrimaryRegionUpdated when the primary moves away. On a replica's region:
// ReplicaKeyCreated (CreateKey, as CloudTrail logs a replica's creation)
// and MultiRegionKeySynchronized (SynchronizeMultiRegionKey) for every
// change of the shared properties that reached it.

// KeyReplicated records ReplicateKey on the primary: the region the new
// replica is made in, and what it is made with there (its own policy,
// description and tags, which related keys do not share).
type KeyReplicated struct {
	ReplicaRegion                  string            `json:"replicaRegion"`
	Description                    string            `json:"description,omitempty"`
	Policy                         string            `json:"policy,omitempty"`
	Tags                           map[string]string `json:"tags,omitempty"`
	BypassPolicyLockoutSafetyCheck bool              `json:"bypassPolicyLockoutSafetyCheck,omitempty"`
}

func (*KeyReplicated) Type() string { return TypeKeyReplicated }
func (b *KeyReplicated) encode(w *writer) {
	w.str("replicaRegion", b.ReplicaRegion)
	w.str("description", b.Description)
	w.str("policy", b.Policy)
	w.strMap("tags", b.Tags)
	w.bool("bypassPolicyLockoutSafetyCheck", b.BypassPolicyLockoutSafetyCheck)
}

// SyncedMaterial is one key material as it reached a region: its id and
// the commitment to the copy stored there, wrapped under that region's
// root key (the id is the same in every region, the commitment is not).
// Imported material travels as its id only (WrappedHash empty): each
// region imports the same material itself.
type SyncedMaterial struct {
	Material     MaterialRef `json:"material"`
	Created      time.Time   `json:"created"`
	RotationType string      `json:"rotationType,omitempty"`
	Imported     bool        `json:"imported,omitempty"`
}

func (m SyncedMaterial) encode(w *writer) {
	m.Material.encode(w, "material")
	w.time("created", m.Created)
	w.str("rotationType", m.RotationType)
	w.bool("imported", m.Imported)
}

// MultiRegionShared is what related keys share, as the region that sent it
// (SourceRegion: the primary, or the primary handing its role over) had
// it at Version, which counts the changes of the shared properties across
// every primary the key has had. Materials are those this event stores in
// its region (all of them when a replica is created; the new ones after).
// CurrentMaterial is the one related keys encrypt with: a new material
// becomes current only once every replica holds it.
type MultiRegionShared struct {
	SourceRegion       string           `json:"sourceRegion"`
	SourceEventID      string           `json:"sourceEventId"`
	Version            uint64           `json:"version"`
	PrimaryRegion      string           `json:"primaryRegion"`
	ReplicaRegions     []string         `json:"replicaRegions,omitempty"`
	RotationPeriodDays int              `json:"rotationPeriodDays,omitempty"`
	NextRotation       time.Time        `json:"nextRotation,omitempty"`
	Materials          []SyncedMaterial `json:"materials,omitempty"`
	CurrentMaterial    string           `json:"currentMaterial,omitempty"`
}

func (s *MultiRegionShared) encode(w *writer) {
	w.str("sourceRegion", s.SourceRegion)
	w.str("sourceEventId", s.SourceEventID)
	w.uintAlways("version", s.Version)
	w.str("primaryRegion", s.PrimaryRegion)
	w.strList("replicaRegions", s.ReplicaRegions)
	w.int("rotationPeriodDays", int64(s.RotationPeriodDays))
	w.time("nextRotation", s.NextRotation)
	if len(s.Materials) > 0 {
		w.name("materials")
		w.b = append(w.b, '[')
		for i, m := range s.Materials {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			w.open()
			m.encode(w)
			w.close()
		}
		w.b = append(w.b, ']')
	}
	w.str("currentMaterial", s.CurrentMaterial)
}

// ReplicaKeyCreated records a replica made in this region from its
// primary's ReplicateKey (SourceEventID), with the shared properties and
// its own description, policy and tags. An EXTERNAL key's replica has no
// material until it is imported here.
type ReplicaKeyCreated struct {
	MultiRegionShared
	KeySpec     string            `json:"keySpec"`
	KeyUsage    string            `json:"keyUsage"`
	Origin      string            `json:"origin"`
	Description string            `json:"description,omitempty"`
	Policy      string            `json:"policy,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
	PublicKey   string            `json:"publicKey,omitempty"`
}

func (*ReplicaKeyCreated) Type() string { return TypeReplicaKeyCreated }
func (b *ReplicaKeyCreated) encode(w *writer) {
	b.MultiRegionShared.encode(w)
	w.str("keySpec", b.KeySpec)
	w.str("keyUsage", b.KeyUsage)
	w.str("origin", b.Origin)
	w.str("description", b.Description)
	w.str("policy", b.Policy)
	w.strMap("tags", b.Tags)
	w.str("publicKey", b.PublicKey)
}

// MultiRegionKeySynchronized records a change of the shared properties
// reaching this region's related key: new material, rotation settings,
// the set of replicas, or the primary moving (to this region, which then
// holds the primary; or confirmed by the new primary, to the key here that
// handed it over).
type MultiRegionKeySynchronized struct {
	MultiRegionShared
}

func (*MultiRegionKeySynchronized) Type() string { return TypeMultiRegionKeySynchronized }
func (b *MultiRegionKeySynchronized) encode(w *writer) {
	b.MultiRegionShared.encode(w)
}

// ReplicaAcknowledged records, on the primary, a replica's region
// confirming that it holds the shared properties of Version (its event
// SourceEventID), or that the replica was deleted there.
type ReplicaAcknowledged struct {
	Region        string `json:"region"`
	Version       uint64 `json:"version"`
	SourceEventID string `json:"sourceEventId"`
	Deleted       bool   `json:"deleted,omitempty"`
}

func (*ReplicaAcknowledged) Type() string { return TypeReplicaAcknowledged }
func (b *ReplicaAcknowledged) encode(w *writer) {
	w.str("region", b.Region)
	w.uintAlways("version", b.Version)
	w.str("sourceEventId", b.SourceEventID)
	w.bool("deleted", b.Deleted)
}

// PrimaryRegionUpdated records UpdatePrimaryRegion on the primary: the
// replica in PrimaryRegion becomes the primary and this key a replica,
// Updating until the new primary confirms.
type PrimaryRegionUpdated struct {
	PrimaryRegion string `json:"primaryRegion"`
}

func (*PrimaryRegionUpdated) Type() string { return TypePrimaryRegionUpdated }
func (b *PrimaryRegionUpdated) encode(w *writer) {
	w.str("primaryRegion", b.PrimaryRegion)
}

// PeerRegionRegistered records the public replication key another region
// announced (signed by its writer WriterID): key material sent to that
// region is sealed to it.
type PeerRegionRegistered struct {
	Region    string `json:"region"`
	PublicKey string `json:"publicKey"`
	WriterID  string `json:"writerId"`
}

func (*PeerRegionRegistered) Type() string { return TypePeerRegionRegistered }
func (b *PeerRegionRegistered) encode(w *writer) {
	w.str("region", b.Region)
	w.str("publicKey", b.PublicKey)
	w.str("writerId", b.WriterID)
}
