package offline

import (
	"errors"
	"os"
	"path/filepath"
)

// ErrUnsigned means the export has no SignaturesFile while its checkpoint
// names ledger writers: the writer signatures were dropped.
var ErrUnsigned = errors.New("the checkpoint names ledger writers but the export has no " + SignaturesFile)

// WriterError is a writer signature that does not verify, or a writer the
// checkpoint names that the exported ledger does not register.
type WriterError struct{ Err error }

func (e *WriterError) Error() string { return "writer signatures: " + e.Err.Error() }
func (e *WriterError) Unwrap() error { return e.Err }

// DirResult is what VerifyDir established.
type DirResult struct {
	Result
	// Writers is the writer signatures' check; nil when the export has no
	// SignaturesFile (one from before writers signed, whose checkpoint
	// names no writer).
	Writers *WriterResult
}

// VerifyDir checks an export directory with nothing but the checkpoint
// verifier key (note vkey): its events against its signed checkpoint
// (Verify), then their writer signatures against the writers the exported
// ledger registers (VerifyWriters), which must include every writer the
// checkpoint names. A file that cannot be read is a *fs.PathError; any
// other error means the export does not verify: a *SignatureError, a
// *LinkError, a mismatch with the signed root, ErrUnsigned or a
// *WriterError.
func VerifyDir(dir, vkey string) (DirResult, error) {
	signed, err := os.ReadFile(filepath.Join(dir, CheckpointFile))
	if err != nil {
		return DirResult{}, err
	}
	events, err := os.ReadFile(filepath.Join(dir, EventsFile))
	if err != nil {
		return DirResult{}, err
	}
	res, err := Verify(events, signed, vkey)
	if err != nil {
		return DirResult{}, err
	}
	sigs, err := os.ReadFile(filepath.Join(dir, SignaturesFile))
	if errors.Is(err, os.ErrNotExist) {
		if len(res.Checkpoint.Writers()) > 0 {
			return DirResult{}, ErrUnsigned
		}
		return DirResult{Result: res}, nil
	}
	if err != nil {
		return DirResult{}, err
	}
	wr, err := VerifyWriters(events, sigs)
	if err == nil {
		err = CheckNamedWriters(res.Checkpoint.Known(), wr.Known)
	}
	if err != nil {
		return DirResult{}, &WriterError{Err: err}
	}
	return DirResult{Result: res, Writers: &wr}, nil
}
