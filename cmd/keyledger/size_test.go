package main

import "testing"

func TestByteSize(t *testing.T) {
	for in, want := range map[string]uint64{"0": 0, "1536": 1536, "1KiB": 1024, "64MiB": 64 << 20, "1GiB": 1 << 30, " 2 TiB": 2 << 40, "7B": 7} {
		var b byteSize
		if err := b.Set(in); err != nil || uint64(b) != want {
			t.Errorf("Set(%q) = %d, %v; want %d", in, b, err, want)
		}
	}
	for _, in := range []string{"", "GiB", "1GB", "-1", "1.5GiB", "99999999999TiB", "1 gib"} {
		var b byteSize
		if err := b.Set(in); err == nil {
			t.Errorf("Set(%q) = %d, want an error", in, b)
		}
	}
	for v, want := range map[byteSize]string{0: "0", 1 << 30: "1GiB", 1536: "1536", 3 << 20: "3MiB"} {
		if got := v.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", uint64(v), got, want)
		}
	}
}
