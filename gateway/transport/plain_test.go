package transport

import (
	"errors"
	"testing"
)

func TestCheckPlainHTTP(t *testing.T) {
	tests := []struct {
		addr     string
		insecure bool
		allowed  bool
	}{
		{"127.0.0.1:8080", false, true},
		{"127.8.9.10:8080", false, true},
		{"[::1]:8080", false, true},
		{"[::ffff:127.0.0.1]:8080", false, true},
		{"localhost:8080", false, true},
		{"0.0.0.0:8080", false, false},
		{":8080", false, false},
		{"[::]:8080", false, false},
		{"10.0.0.5:8080", false, false},
		{"kms.internal:8080", false, false},
		{"0.0.0.0:8080", true, true},
		{"10.0.0.5:8080", true, true},
	}
	for _, tc := range tests {
		err := CheckPlainHTTP(tc.addr, tc.insecure)
		if (err == nil) != tc.allowed {
			t.Errorf("CheckPlainHTTP(%q, %v) = %v, want allowed=%v", tc.addr, tc.insecure, err, tc.allowed)
		}
		var pe *ErrPlainHTTP
		if err != nil && !errors.As(err, &pe) {
			t.Errorf("CheckPlainHTTP(%q): %v is not ErrPlainHTTP", tc.addr, err)
		}
	}
	if err := CheckPlainHTTP("no-port", false); err == nil {
		t.Error("an address without a port was accepted")
	}
}
