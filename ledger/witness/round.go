package witness

import (
	"context"
	"errors"
)

// StateError means the state file cannot be read or does not verify with
// the verifier key: the witness's memory was tampered with (or lost its
// key), and it alarms rather than start over from whatever the
// deployment serves.
type StateError struct{ Err error }

func (e *StateError) Error() string { return e.Err.Error() }
func (e *StateError) Unwrap() error { return e.Err }

// SaveError means the round's checkpoint verified but could not be saved:
// the next round checks against the older one again.
type SaveError struct{ Err error }

func (e *SaveError) Error() string { return e.Err.Error() }
func (e *SaveError) Unwrap() error { return e.Err }

// Alarm reports whether err is one to page someone about: a rolled-back,
// forked or forged checkpoint, or a state file that does not verify.
// Anything else (an unreachable deployment, a full disk) is retried.
func Alarm(err error) bool {
	return errors.Is(err, ErrRollback) || errors.Is(err, ErrFork) || errors.Is(err, ErrSignature) || errors.As(err, new(*StateError))
}

// Round is one round of a witness that keeps what it saw in the state
// file at path: it loads the last checkpoint accepted (verified again),
// checks the deployment's newest against it (Check), and saves that. It
// returns the checkpoint seen before (nil on the first round) and the one
// accepted now.
func Round(ctx context.Context, src Source, vkey, path string) (prev *Seen, next Seen, err error) {
	prev, err = Load(path, vkey)
	if err != nil {
		return nil, Seen{}, &StateError{Err: err}
	}
	next, err = Check(ctx, src, vkey, prev)
	if err != nil {
		return prev, Seen{}, err
	}
	if err := Save(path, next); err != nil {
		return prev, next, &SaveError{Err: err}
	}
	return prev, next, nil
}
