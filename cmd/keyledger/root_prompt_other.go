//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package main

import "errors"

func promptSecret(string) ([]byte, error) {
	return nil, errors.New("no terminal prompt on this platform; set KEYLEDGER_ROOT_PASSPHRASE")
}
