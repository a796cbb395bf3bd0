//go:build !unix

package embedded

import "errors"

// freeBytes is not measured on this platform: writes are not pre-checked.
func freeBytes(string) (int64, error) { return 0, errors.New("free space unknown") }
