package event

// Root key events: sealing, unsealing and rotation of the root key that
// wraps all key material. None holds a secret: no passphrase, share, key or
// KEK; fingerprints and versions only. Envelope: Operation names the act,
// Actor who did it (nil for the service itself).

// Stable type strings of the root key events.
const (
	TypeRootUnsealed        = "RootUnsealed.v1"
	TypeRootUnsealFailed    = "RootUnsealFailed.v1"
	TypeRootSealed          = "RootSealed.v1"
	TypeRootRotationStarted = "RootRotationStarted.v1"
	TypeMaterialRewrapped   = "MaterialRewrapped.v1"
	TypeRootVersionRetired  = "RootVersionRetired.v1"
)

// RootUnsealed records the root key being opened: the seal mode
// (passphrase, shamir, pkcs11), the current root version, and who
// submitted unseal shares (principal ARNs; empty for a passphrase or PIN
// given at start).
type RootUnsealed struct {
	Mode           string   `json:"mode"`
	CurrentVersion uint64   `json:"currentVersion"`
	Submitters     []string `json:"submitters,omitempty"`
}

func (*RootUnsealed) Type() string { return TypeRootUnsealed }
func (b *RootUnsealed) encode(w *writer) {
	w.str("mode", b.Mode)
	w.uintAlways("currentVersion", b.CurrentVersion)
	w.strList("submitters", b.Submitters)
}

// RootUnsealFailed records attempts that did not open the root key: a
// wrong passphrase, or shares that did not open it together (which share
// was wrong is unknowable, and not recorded). Attempts counts failures
// since the last one recorded (failures while the ledger could not yet be
// written are recorded together once it can).
type RootUnsealFailed struct {
	Mode       string   `json:"mode"`
	Attempts   uint64   `json:"attempts"`
	Submitters []string `json:"submitters,omitempty"`
}

func (*RootUnsealFailed) Type() string { return TypeRootUnsealFailed }
func (b *RootUnsealFailed) encode(w *writer) {
	w.str("mode", b.Mode)
	w.uintAlways("attempts", b.Attempts)
	w.strList("submitters", b.Submitters)
}

// RootSealed records the root key leaving memory (orderly shutdown).
type RootSealed struct {
	Mode string `json:"mode"`
}

func (*RootSealed) Type() string       { return TypeRootSealed }
func (b *RootSealed) encode(w *writer) { w.str("mode", b.Mode) }

// RootRotationStarted records a new root key version: new material is
// wrapped under ToVersion from now on, and every material under older
// versions is rewrapped in the background.
type RootRotationStarted struct {
	FromVersion uint64 `json:"fromVersion"`
	ToVersion   uint64 `json:"toVersion"`
	Fingerprint string `json:"fingerprint,omitempty"`
}

func (*RootRotationStarted) Type() string { return TypeRootRotationStarted }
func (b *RootRotationStarted) encode(w *writer) {
	w.uintAlways("fromVersion", b.FromVersion)
	w.uintAlways("toVersion", b.ToVersion)
	w.str("fingerprint", b.Fingerprint)
}

// MaterialRewrapped records one key material rewrapped under a newer root
// key version: its new commitment, and the commitment it replaces (still
// accepted until the old root version is retired, so a crash between this
// event and the store's update loses nothing). The envelope's KeyID is the
// key the material belongs to.
type MaterialRewrapped struct {
	Material     MaterialRef `json:"material"`
	PreviousHash string      `json:"previousHash"`
	RootVersion  uint64      `json:"rootVersion"`
}

func (*MaterialRewrapped) Type() string { return TypeMaterialRewrapped }
func (b *MaterialRewrapped) encode(w *writer) {
	b.Material.encode(w, "material")
	w.str("previousHash", b.PreviousHash)
	w.uintAlways("rootVersion", b.RootVersion)
}

// RootVersionRetired records a root key version destroyed once no stored
// material depended on it; Rewrapped is how many materials its rotation
// rewrapped.
type RootVersionRetired struct {
	Version   uint64 `json:"version"`
	Rewrapped uint64 `json:"rewrapped"`
}

func (*RootVersionRetired) Type() string { return TypeRootVersionRetired }
func (b *RootVersionRetired) encode(w *writer) {
	w.uintAlways("version", b.Version)
	w.uintAlways("rewrapped", b.Rewrapped)
}
