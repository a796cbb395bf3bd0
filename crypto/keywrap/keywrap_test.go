package keywrap

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func h(s string) []byte { b, _ := hex.DecodeString(s); return b }

// TestRFC5649Vectors uses the two examples of RFC 5649 §6.
func TestRFC5649Vectors(t *testing.T) {
	kek := h("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8")
	for _, tc := range []struct{ key, wrapped string }{
		{"c37b7e6492584340bed12207808941155068f738", "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a"},
		{"466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f"},
	} {
		got, err := Wrap(kek, h(tc.key))
		if err != nil || hex.EncodeToString(got) != tc.wrapped {
			t.Fatalf("Wrap = %x, %v", got, err)
		}
		pt, err := Unwrap(kek, h(tc.wrapped))
		if err != nil || !bytes.Equal(pt, h(tc.key)) {
			t.Fatalf("Unwrap = %x, %v", pt, err)
		}
		bad := h(tc.wrapped)
		bad[3] ^= 1
		if _, err := Unwrap(kek, bad); err != ErrUnwrap {
			t.Fatal("tampered wrap accepted")
		}
	}
	for n := 1; n < 70; n++ {
		pt := bytes.Repeat([]byte{byte(n)}, n)
		w, _ := Wrap(kek[:16], pt)
		if got, err := Unwrap(kek[:16], w); err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("length %d: %v", n, err)
		}
	}
}
