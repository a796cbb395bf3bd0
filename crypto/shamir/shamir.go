// Package shamir splits a secret into n shares of which any m recover it
// (Shamir's secret sharing over GF(2^8), one polynomial per secret byte).
//
// It is written here rather than imported: the vetted Go implementations
// live inside large modules (hashicorp/vault's shamir package pulls in the
// vault module), and the whole scheme is the ~100 lines below, reviewable
// line by line and pinned by known-answer tests. Field: GF(2^8) with the
// AES polynomial x^8+x^4+x^3+x+1 (0x11b). Field arithmetic is constant
// time (no tables indexed by secret bytes).
//
// A share is its x coordinate (1..255) followed by one y byte per secret
// byte. Combine cannot tell a wrong share from a right one: fewer than m
// shares, or any wrong share, yields a wrong secret. Callers check the
// result against a commitment (package seal does, with an AEAD).
//
// Functions hold no state and are safe for concurrent use.
package shamir

import (
	"crypto/rand"
	"errors"
	"io"
)

// Errors of Split and Combine.
var (
	ErrParams = errors.New("shamir: need 2 <= threshold <= shares <= 255 and a non-empty secret")
	ErrShares = errors.New("shamir: shares are malformed, of different lengths or repeated")
)

// Split returns n shares of secret, any threshold of which recover it.
func Split(secret []byte, n, threshold int) ([][]byte, error) {
	return split(rand.Reader, secret, n, threshold)
}

func split(rnd io.Reader, secret []byte, n, threshold int) ([][]byte, error) {
	if threshold < 2 || threshold > n || n > 255 || len(secret) == 0 {
		return nil, ErrParams
	}
	shares := make([][]byte, n)
	for i := range shares {
		shares[i] = make([]byte, 1+len(secret))
		shares[i][0] = byte(i + 1)
	}
	coeffs := make([]byte, threshold) // coeffs[0] is the secret byte
	defer clear(coeffs)
	for j, s := range secret {
		coeffs[0] = s
		if _, err := io.ReadFull(rnd, coeffs[1:]); err != nil {
			return nil, err
		}
		for _, sh := range shares {
			sh[1+j] = eval(coeffs, sh[0])
		}
	}
	return shares, nil
}

// eval evaluates the polynomial with coefficients c (lowest first) at x
// (Horner's rule).
func eval(c []byte, x byte) byte {
	var y byte
	for i := len(c) - 1; i >= 0; i-- {
		y = mul(y, x) ^ c[i]
	}
	return y
}

// Combine recovers the secret from shares by Lagrange interpolation at 0.
// With fewer than threshold shares, or a wrong one, the result is wrong,
// not an error.
func Combine(shares [][]byte) ([]byte, error) {
	return interpolate(shares, 0)
}

// ShareAt returns the share at x (1..255) of the polynomials that threshold
// or more right shares determine: what Split gave the holder of x. With
// fewer shares, or a wrong one, the result is wrong, not an error.
func ShareAt(shares [][]byte, x byte) ([]byte, error) {
	if x == 0 {
		return nil, ErrShares
	}
	y, err := interpolate(shares, x)
	if err != nil {
		return nil, err
	}
	defer clear(y)
	return append([]byte{x}, y...), nil
}

// interpolate evaluates at x the polynomials through shares (Lagrange).
func interpolate(shares [][]byte, x byte) ([]byte, error) {
	if len(shares) < 2 {
		return nil, ErrShares
	}
	size := len(shares[0])
	seen := map[byte]bool{}
	for _, sh := range shares {
		if len(sh) != size || size < 2 || sh[0] == 0 || seen[sh[0]] {
			return nil, ErrShares
		}
		seen[sh[0]] = true
	}
	out := make([]byte, size-1)
	for i, si := range shares {
		// basis_i(x) = prod_{j != i} (x - x_j) / (x_i - x_j); minus is xor
		// in GF(2^8). At a share's own x the basis is 1 there, 0 elsewhere.
		basis := byte(1)
		for j, sj := range shares {
			if i != j {
				basis = mul(basis, mul(x^sj[0], inv(si[0]^sj[0])))
			}
		}
		for k := range out {
			out[k] ^= mul(basis, si[1+k])
		}
	}
	return out, nil
}

// mul multiplies in GF(2^8) without branches or tables.
func mul(a, b byte) byte {
	var p byte
	for range 8 {
		p ^= a & -(b & 1)
		hi := a >> 7
		a = a<<1 ^ 0x1b&-hi
		b >>= 1
	}
	return p
}

// inv is the multiplicative inverse, a^254 (a^255 = 1); inv(0) = 0.
func inv(a byte) byte {
	r := a
	for range 6 { // r = a^(2^(k+1)-1) after k rounds; then square once more
		r = mul(mul(r, r), a)
	}
	return mul(r, r)
}
