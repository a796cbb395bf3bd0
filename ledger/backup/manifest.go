package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Format names this layout in the manifest.
const Format = "keyledger-backup/2"

// LegacyFormat is the layout of backups before writer signatures and the
// manifest signature: restored only when the caller allows it
// (Options.AllowUnsigned), verified against the checkpoint alone.
const LegacyFormat = "keyledger-backup/1"

// Manifest describes a backup: where its cut is and every file's digest.
type Manifest struct {
	Format  string    `json:"format"`
	Created time.Time `json:"created"` // by the clock of the machine that took it
	Stream  string    `json:"stream"`
	Events  int64     `json:"events"`
	Head    string    `json:"head"` // hash of the last event at the cut
	// Last names the last event at the cut: its index and the time it
	// records. Both are covered by the signed checkpoint (the event is),
	// so the cut's time does not rest on Created.
	Last *struct {
		Index uint64    `json:"index"`
		Time  time.Time `json:"time"`
	} `json:"last,omitempty"`
	Checkpoint struct {
		Origin string `json:"origin"`
		Size   int64  `json:"size"`
		Root   string `json:"root"` // base64, as in the note
	} `json:"checkpoint"`
	Materials int    `json:"materials"`
	Files     []File `json:"files"`
}

// The manifest signature. A backup's checkpoint vouches for its events,
// but not for the backup as a whole: whoever holds an older backup (or
// can read the ledger, the stored checkpoints and the material bucket)
// could cut it to an earlier checkpoint, recompute the digests and set
// Created to any date. The manifest is therefore signed with the backup
// signing key, a note key (Ed25519, the format of checkpoints) kept by
// the backup job, apart from the data: not in the data directory, not in
// the backup. Its public half is escrowed with the checkpoint verifier
// key, and restore refuses a backup whose manifest it does not verify.
//
// SignatureFile is the signed note; its text names the format and the
// manifest file's SHA-256, so the signature covers every byte of the
// manifest — the cut, Created, and through the digests every file:
//
//	keyledger-backup/2 manifest
//	sha256 <hex of manifest.json>
//
// The backup signing key is not the checkpoint key: that key lives with
// the server (by default in its data directory) and says "this is the
// ledger"; a backup job that only reads needs no power to sign tree
// heads witnesses would accept.
const SignatureFile = "manifest.sig"

// ErrManifestSignature means the manifest is unsigned, or not signed by
// the backup signing key given.
var ErrManifestSignature = errors.New("the manifest is not signed by the backup signing key")

func manifestNoteText(manifest []byte) string {
	sum := sha256.Sum256(manifest)
	return Format + " manifest\nsha256 " + hex.EncodeToString(sum[:]) + "\n"
}

// signManifest returns the signed note over manifest's bytes.
func signManifest(manifest []byte, s note.Signer) ([]byte, error) {
	return note.Sign(&note.Note{Text: manifestNoteText(manifest)}, s)
}

// verifyManifest checks the signed note sig over manifest's bytes with
// the backup verifier key vkey, and returns the signer's name.
func verifyManifest(manifest, sig []byte, vkey string) (string, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return "", fmt.Errorf("the backup verifier key: %v", err)
	}
	n, err := note.Open(sig, note.VerifierList(v))
	if err != nil {
		return "", fmt.Errorf("%w (%v)", ErrManifestSignature, err)
	}
	if !bytes.Equal([]byte(n.Text), []byte(manifestNoteText(manifest))) {
		return "", fmt.Errorf("%w: the signature is over another manifest (the manifest was changed)", ErrManifestSignature)
	}
	return v.Name(), nil
}
