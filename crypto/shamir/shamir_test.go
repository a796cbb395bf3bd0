package shamir

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"testing"
)

// Known answers from FIPS-197 §4.2 (0x57·0x83 = 0xc1, 0x57·0x13 = 0xfe)
// and the AES S-box construction (0x53⁻¹ = 0xca).
func TestFieldKnownAnswers(t *testing.T) {
	for _, c := range []struct{ a, b, want byte }{{0x57, 0x83, 0xc1}, {0x57, 0x13, 0xfe}, {0x01, 0xab, 0xab}, {0x00, 0xab, 0x00}} {
		if got := mul(c.a, c.b); got != c.want {
			t.Errorf("mul(%#x, %#x) = %#x, want %#x", c.a, c.b, got, c.want)
		}
	}
	if got := inv(0x53); got != 0xca {
		t.Errorf("inv(0x53) = %#x, want 0xca", got)
	}
	for a := 1; a < 256; a++ {
		if mul(byte(a), inv(byte(a))) != 1 {
			t.Fatalf("a·a⁻¹ != 1 for %#x", a)
		}
	}
}

// The shares of a fixed secret with fixed coefficients, computed
// independently (a separate Python GF(2^8) implementation).
func TestSplitKnownAnswer(t *testing.T) {
	coeffs := make([]byte, 8)
	for i := range coeffs {
		coeffs[i] = byte(0xa0 + i)
	}
	shares, err := split(bytes.NewReader(coeffs), []byte{0x4b, 0x4c, 0x00, 0xff}, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"014a4d01fe", "02a2a9f102", "03a3a8f003", "04032c18cf", "05022d19ce"}
	for i, sh := range shares {
		if hex.EncodeToString(sh) != want[i] {
			t.Errorf("share %d = %x, want %s", i, sh, want[i])
		}
	}
}

func TestThreshold(t *testing.T) {
	secret := make([]byte, 32)
	rand.Read(secret)
	shares, err := Split(secret, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, pick := range [][]int{{0, 1, 2}, {4, 2, 0}, {1, 3, 4}, {0, 1, 2, 3, 4}} {
		var sub [][]byte
		for _, i := range pick {
			sub = append(sub, shares[i])
		}
		got, err := Combine(sub)
		if err != nil || !bytes.Equal(got, secret) {
			t.Errorf("shares %v: got %x, %v; want the secret", pick, got, err)
		}
	}
	if got, _ := Combine(shares[:2]); bytes.Equal(got, secret) {
		t.Error("two of threshold three shares recovered the secret")
	}
	bad := bytes.Clone(shares[1])
	bad[5] ^= 1
	if got, _ := Combine([][]byte{shares[0], bad, shares[2]}); bytes.Equal(got, secret) {
		t.Error("a damaged share recovered the secret")
	}
}

func TestRefusals(t *testing.T) {
	if _, err := Split([]byte{1}, 3, 1); err != ErrParams {
		t.Errorf("threshold 1: %v", err)
	}
	if _, err := Split([]byte{1}, 2, 3); err != ErrParams {
		t.Errorf("threshold > shares: %v", err)
	}
	if _, err := Split(nil, 3, 2); err != ErrParams {
		t.Errorf("empty secret: %v", err)
	}
	shares, _ := Split([]byte{1, 2, 3}, 3, 2)
	for name, in := range map[string][][]byte{
		"repeated":  {shares[0], shares[0]},
		"lengths":   {shares[0], shares[1][:2]},
		"x zero":    {shares[0], append([]byte{0}, shares[1][1:]...)},
		"one share": {shares[0]},
	} {
		if _, err := Combine(in); err != ErrShares {
			t.Errorf("%s: %v, want ErrShares", name, err)
		}
	}
}

// TestShareAt: any threshold of the shares give back every other share,
// byte for byte; fewer give something else.
func TestShareAt(t *testing.T) {
	secret := []byte("thirty-two bytes of secret here!")
	shares, err := Split(secret, 6, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, pick := range [][]int{{0, 1, 2}, {5, 3, 1}, {2, 4, 5, 0}} {
		var some [][]byte
		for _, i := range pick {
			some = append(some, shares[i])
		}
		for _, want := range shares {
			got, err := ShareAt(some, want[0])
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("share %d from %v: %x, %v; want %x", want[0], pick, got, err, want)
			}
		}
	}
	if got, _ := ShareAt(shares[:2], shares[4][0]); bytes.Equal(got, shares[4]) {
		t.Fatal("two shares of a 3-of-6 split gave a third")
	}
	if _, err := ShareAt(shares[:3], 0); err == nil {
		t.Fatal("ShareAt(0) gave the secret")
	}
}
