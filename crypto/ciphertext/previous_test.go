package ciphertext

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/keyledger/keyledger/crypto/secret"
)

// TestOpensPreviousCiphertexts opens blobs sealed by the header code
// before it was built in place (1a15faf): a UUID key id given in mixed
// case and a multi-Region key id, under an upper-case material id.
func TestOpensPreviousCiphertexts(t *testing.T) {
	mat := secret.New(bytes.Repeat([]byte{0x42}, 32))
	ctx := map[string]string{"tenant": "t-42", "app": "billing"}
	materialID := "ab" + strings.Repeat("0f", 31)
	for _, tc := range []struct{ keyID, blob string }{
		{"1234abcd-12ab-34cd-56ef-1234567890ab", "011234abcd12ab34cd56ef1234567890abab0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f09c593c4c36c9612a818f905ee27776c0f0aba3ee68240fffa08c162ffc6f76dce56156cde1a4756f4fd630ddb42d394dffdb38241d6380931"},
		{"mrk-1234abcd12ab34cd56ef1234567890ab", "021234abcd12ab34cd56ef1234567890abab0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f380ab93132fa5882bc6293dfd93cf4ab88b13f885612571fc7f96f9afeb02b5850cd070b1194d7b16bd66b6dd2b02d54247015d85e015bd16b"},
	} {
		blob, _ := hex.DecodeString(tc.blob)
		h, err := ParseHeader(blob)
		if err != nil || h.KeyID != tc.keyID || h.MaterialID != materialID {
			t.Fatalf("ParseHeader = %+v, %v", h, err)
		}
		pt, err := Open(blob, mat, ctx)
		if err != nil || string(pt) != "old plaintext" {
			t.Fatalf("%s: Open = %q, %v", tc.keyID, pt, err)
		}
		hdr, err := h.appendTo(nil)
		if err != nil || !bytes.Equal(hdr, blob[:headerSize]) {
			t.Fatalf("%s: the header it parses to is built as %x, %v", tc.keyID, hdr, err)
		}
	}
}

// previousMarshal is Header.marshal as of 1a15faf.
func previousMarshal(h Header) ([]byte, error) {
	version := byte(version1)
	id, ok := previousParseUUID(h.KeyID)
	if mrk, isMRK := strings.CutPrefix(h.KeyID, mrkPrefix); isMRK {
		version = versionMRK
		b, err := hex.DecodeString(mrk)
		ok = err == nil && len(b) == 16 && mrk == strings.ToLower(mrk)
		copy(id[:], b)
	}
	mat, err := hex.DecodeString(h.MaterialID)
	if !ok || err != nil || len(mat) != 32 {
		return nil, errors.New("ciphertext: malformed header")
	}
	out := make([]byte, 0, headerSize)
	out = append(out, version)
	out = append(out, id[:]...)
	return append(out, mat...), nil
}

func previousParseUUID(s string) (id [16]byte, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return id, false
	}
	b, err := hex.DecodeString(s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36])
	if err != nil {
		return id, false
	}
	copy(id[:], b)
	return id, true
}

// FuzzHeaderMatchesPrevious: any key id and material id is accepted or
// refused as before, and accepted ones make the same bytes.
func FuzzHeaderMatchesPrevious(f *testing.F) {
	mat := strings.Repeat("0f", 32)
	for _, id := range []string{"1234abcd-12ab-34cd-56ef-1234567890ab", "1234ABCD-12AB-34CD-56EF-1234567890AB", "mrk-1234abcd12ab34cd56ef1234567890ab",
		"mrk-1234ABCD12ab34cd56ef1234567890ab", "mrk-1234abcd-12ab-34cd-56ef-1234567890ab", "1234abcd-12ab-34cd-56ef-1234567890a\xff", "+234abcd-12ab-34cd-56ef-1234567890ab"} {
		f.Add(id, mat)
	}
	f.Add("1234abcd-12ab-34cd-56ef-1234567890ab", strings.ToUpper(mat))
	f.Add("1234abcd-12ab-34cd-56ef-1234567890ab", mat[:63]+"g")
	f.Fuzz(func(t *testing.T, keyID, materialID string) {
		h := Header{KeyID: keyID, MaterialID: materialID}
		got, err := h.appendTo(nil)
		want, werr := previousMarshal(h)
		if (err == nil) != (werr == nil) || !bytes.Equal(got, want) {
			t.Fatalf("%q %q: %x, %v; before %x, %v", keyID, materialID, got, err, want, werr)
		}
	})
}
