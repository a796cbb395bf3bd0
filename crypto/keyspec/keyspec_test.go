package keyspec

import "testing"

func TestAllows(t *testing.T) {
	tests := []struct {
		spec  Spec
		usage Usage
		want  bool
	}{
		{SymmetricDefault, EncryptDecrypt, true},
		{SymmetricDefault, SignVerify, false},
		{HMAC256, GenerateVerifyMAC, true},
		{HMAC256, EncryptDecrypt, false},
		{ECCNISTP256, KeyAgreement, true},
		{ECCSECGP256K1, KeyAgreement, false},
		{ECCEdwards25519, SignVerify, true},
		{Spec("AES_256"), EncryptDecrypt, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.spec)+"/"+string(tt.usage), func(t *testing.T) {
			if got := tt.spec.Allows(tt.usage); got != tt.want {
				t.Fatalf("Allows = %v, want %v", got, tt.want)
			}
		})
	}
	if Spec("NOPE").Known() || !MLDSA87.Known() {
		t.Fatal("Known is wrong")
	}
}
