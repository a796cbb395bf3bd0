package main

import (
	"bytes"
	"os"
)

// rootSecrets are the root key passphrase and the HSM user PIN given in the
// environment, taken out of it as the command starts (takeRootSecrets), so
// that nothing started later — a child process, a crash dump of the
// environment, /proc/<pid>/environ — finds them there.
type rootSecrets struct {
	passphrase, pin       []byte
	hasPassphrase, hasPIN bool
}

func takeRootSecrets() *rootSecrets {
	s := &rootSecrets{}
	s.passphrase, s.hasPassphrase = takeSecretEnv(passphraseEnv)
	s.pin, s.hasPIN = takeSecretEnv(pinEnv)
	return s
}

// clear overwrites what was taken (best effort: the runtime's own copy of
// the environment string is immutable and left to the garbage collector).
func (s *rootSecrets) clear() {
	clear(s.passphrase)
	clear(s.pin)
}

// takeSecretEnv returns the value of name and removes it from the
// environment: from Go's view of it (os.Environ, child processes) and, where
// the platform allows, from the process's original environment block,
// which /proc/<pid>/environ shows for the life of the process.
func takeSecretEnv(name string) ([]byte, bool) {
	v, ok := os.LookupEnv(name)
	if !ok {
		return nil, false
	}
	os.Unsetenv(name)
	scrubEnvironBlock(name)
	return []byte(v), true
}

// environEntries calls fn with the offset of each NAME=value entry of a
// NUL-separated environment block that names name.
func environEntries(block []byte, name string, fn func(off, n int)) {
	prefix := []byte(name + "=")
	for off := 0; off < len(block); {
		n := bytes.IndexByte(block[off:], 0)
		if n < 0 {
			n = len(block) - off
		}
		if bytes.HasPrefix(block[off:off+n], prefix) {
			fn(off, n)
		}
		off += n + 1
	}
}
