package merkle

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is a signed statement of the tree's size and root hash
// (C2SP tlog-checkpoint): "<origin>\n<size>\n<base64 root>\n", then
// extension lines, plus the note's signature lines. keyledger's extension
// names each registered ledger writer,
// "keyledger-writer <id> <base64 Ed25519 public key>\n" (sorted by id),
// then each revoked one, "keyledger-revoked-writer <id> <key>\n": a
// revoked writer signs nothing any more, but bases, snapshots and older
// checkpoints signed before its revocation still name it. C2SP readers
// ignore extension lines; ours read the writers and ignore any other
// extension (so older builds read only the writers).
type Checkpoint struct {
	Origin string
	Size   int64
	Root   tlog.Hash
	// Extensions are the lines after the root, each ending in "\n" (see
	// WriterLines); kept as text so that checkpoints stay comparable.
	Extensions string
}

// writerExtension starts the extension line naming a ledger writer,
// revokedExtension one naming a revoked writer.
const (
	writerExtension  = "keyledger-writer "
	revokedExtension = "keyledger-revoked-writer "
)

// WriterLines are the extension lines naming writers (ID → base64 public
// key), sorted by ID.
func WriterLines(writers map[string]string) string { return extensionLines(writerExtension, writers) }

// RevokedLines are the extension lines naming revoked writers (ID →
// base64 public key), sorted by ID.
func RevokedLines(revoked map[string]string) string { return extensionLines(revokedExtension, revoked) }

func extensionLines(prefix string, writers map[string]string) string {
	ids := make([]string, 0, len(writers))
	for id := range writers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, "%s%s %s\n", prefix, id, writers[id])
	}
	return b.String()
}

// Writers returns the ledger writers the checkpoint names (ID → base64
// public key); nil when it names none. Revoked writers are not among them.
func (c Checkpoint) Writers() map[string]string { return c.named(writerExtension) }

// Revoked returns the revoked writers the checkpoint names (ID → base64
// public key); nil when it names none.
func (c Checkpoint) Revoked() map[string]string { return c.named(revokedExtension) }

// Known returns every writer the checkpoint names, registered or revoked:
// those a base or checkpoint from before a revocation may name.
func (c Checkpoint) Known() map[string]string {
	out := c.Writers()
	for id, pub := range c.Revoked() {
		if out == nil {
			out = map[string]string{}
		}
		out[id] = pub
	}
	return out
}

func (c Checkpoint) named(prefix string) map[string]string {
	var out map[string]string
	for _, ext := range strings.Split(c.Extensions, "\n") {
		w, ok := strings.CutPrefix(ext, prefix)
		if !ok {
			continue
		}
		if id, pub, ok := strings.Cut(w, " "); ok {
			if out == nil {
				out = map[string]string{}
			}
			out[id] = pub
		}
	}
	return out
}

// Body is the checkpoint's text before signing.
func (c Checkpoint) Body() string {
	return fmt.Sprintf("%s\n%d\n%s\n%s", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root[:]), c.Extensions)
}

// ParseBody reads a checkpoint's text.
func ParseBody(text string) (Checkpoint, error) {
	lines := strings.Split(text, "\n")
	if len(lines) < 4 || lines[0] == "" || lines[len(lines)-1] != "" {
		return Checkpoint{}, errors.New("merkle: malformed checkpoint")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 {
		return Checkpoint{}, errors.New("merkle: malformed checkpoint size")
	}
	h, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(h) != tlog.HashSize {
		return Checkpoint{}, errors.New("merkle: malformed checkpoint root hash")
	}
	var root tlog.Hash
	copy(root[:], h)
	cp := Checkpoint{Origin: lines[0], Size: size, Root: root}
	for _, ext := range lines[3 : len(lines)-1] {
		if ext == "" {
			return Checkpoint{}, errors.New("merkle: malformed checkpoint: empty extension line")
		}
		if w, ok := strings.CutPrefix(ext, writerExtension); ok {
			if id, pub, ok := strings.Cut(w, " "); !ok || id == "" || pub == "" || strings.Contains(pub, " ") {
				return Checkpoint{}, errors.New("merkle: malformed writer line in checkpoint")
			}
		}
		cp.Extensions += ext + "\n"
	}
	return cp, nil
}

// Sign returns the signed note of a checkpoint.
func Sign(c Checkpoint, signer note.Signer) ([]byte, error) {
	return note.Sign(&note.Note{Text: c.Body()}, signer)
}

// Open verifies a signed checkpoint with a verifier key (the note
// "vkey" text) and returns it.
func Open(signed []byte, vkey string) (Checkpoint, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("merkle: verifier key: %w", err)
	}
	n, err := note.Open(signed, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("merkle: checkpoint signature: %w", err)
	}
	return ParseBody(n.Text)
}

// LoadOrCreateKey reads the checkpoint signing key (a note "skey" line)
// from path, or generates an Ed25519 key there (mode 0600) and writes the
// matching verifier key next to it as path+".pub". It returns the signer
// and the verifier key text.
func LoadOrCreateKey(path, name string) (note.Signer, string, error) {
	if data, err := os.ReadFile(path); err == nil {
		skey := strings.TrimSpace(string(data))
		clear(data)
		s, err := note.NewSigner(skey)
		if err != nil {
			return nil, "", fmt.Errorf("merkle: checkpoint key %s: %w", path, err)
		}
		vkey, err := os.ReadFile(path + ".pub")
		if err != nil {
			return nil, "", fmt.Errorf("merkle: verifier key: %w", err)
		}
		return s, strings.TrimSpace(string(vkey)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, "", err
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, "", err
	}
	if err := os.WriteFile(path, []byte(skey+"\n"), 0o600); err != nil {
		return nil, "", err
	}
	if err := os.WriteFile(path+".pub", []byte(vkey+"\n"), 0o644); err != nil {
		return nil, "", err
	}
	s, err := note.NewSigner(skey)
	return s, vkey, err
}

// VerifyCheckpoints opens every signed checkpoint with the verifier key and
// checks that its root is the tree's root at its size (root is usually a
// Tree's Root). It returns how many verified before the first problem.
func VerifyCheckpoints(signed [][]byte, vkey string, root func(size int64) (tlog.Hash, error)) (int, error) {
	for i, s := range signed {
		cp, err := Open(s, vkey)
		if err != nil {
			return i, fmt.Errorf("checkpoint %d: %v", i+1, err)
		}
		r, err := root(cp.Size)
		if err != nil || r != cp.Root {
			return i, fmt.Errorf("checkpoint %d (size %d) does not match the ledger's Merkle root", i+1, cp.Size)
		}
	}
	return len(signed), nil
}
