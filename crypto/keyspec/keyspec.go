// Package keyspec names the AWS KMS key specs, key usages and algorithms,
// which combinations AWS allows, and which of them keyledger implements.
// It holds no key material and is safe for concurrent use.
package keyspec

// Spec is an AWS KMS KeySpec.
type Spec string

const (
	SymmetricDefault Spec = "SYMMETRIC_DEFAULT"
	RSA2048          Spec = "RSA_2048"
	RSA3072          Spec = "RSA_3072"
	RSA4096          Spec = "RSA_4096"
	ECCNISTP256      Spec = "ECC_NIST_P256"
	ECCNISTP384      Spec = "ECC_NIST_P384"
	ECCNISTP521      Spec = "ECC_NIST_P521"
	ECCSECGP256K1    Spec = "ECC_SECG_P256K1"
	ECCEdwards25519  Spec = "ECC_NIST_EDWARDS25519"
	HMAC224          Spec = "HMAC_224"
	HMAC256          Spec = "HMAC_256"
	HMAC384          Spec = "HMAC_384"
	HMAC512          Spec = "HMAC_512"
	SM2              Spec = "SM2"
	MLDSA44          Spec = "ML_DSA_44"
	MLDSA65          Spec = "ML_DSA_65"
	MLDSA87          Spec = "ML_DSA_87"
)

// Usage is an AWS KMS KeyUsage.
type Usage string

const (
	EncryptDecrypt    Usage = "ENCRYPT_DECRYPT"
	SignVerify        Usage = "SIGN_VERIFY"
	GenerateVerifyMAC Usage = "GENERATE_VERIFY_MAC"
	KeyAgreement      Usage = "KEY_AGREEMENT"
)

// EncryptionAlgorithm is an AWS KMS EncryptionAlgorithmSpec.
type EncryptionAlgorithm string

const (
	AlgSymmetricDefault EncryptionAlgorithm = "SYMMETRIC_DEFAULT"
	AlgRSAESOAEPSHA1    EncryptionAlgorithm = "RSAES_OAEP_SHA_1"
	AlgRSAESOAEPSHA256  EncryptionAlgorithm = "RSAES_OAEP_SHA_256"
	AlgSM2PKE           EncryptionAlgorithm = "SM2PKE"
)

// Known reports whether s is a key spec AWS KMS defines.
func (s Spec) Known() bool {
	_, ok := allowedUsages[s]
	return ok
}

// Implemented reports whether keyledger can create keys of this spec yet.
func (s Spec) Implemented() bool { return s == SymmetricDefault }

// Allows reports whether AWS allows keys of spec s to have usage u.
func (s Spec) Allows(u Usage) bool {
	for _, a := range allowedUsages[s] {
		if a == u {
			return true
		}
	}
	return false
}

// DefaultUsage is the KeyUsage AWS assumes when CreateKey omits it.
func (s Spec) DefaultUsage() Usage { return EncryptDecrypt }

// EncryptionAlgorithms lists what DescribeKey shows for a key of this spec
// and usage.
func (s Spec) EncryptionAlgorithms(u Usage) []EncryptionAlgorithm {
	if u != EncryptDecrypt {
		return nil
	}
	switch s {
	case SymmetricDefault:
		return []EncryptionAlgorithm{AlgSymmetricDefault}
	case RSA2048, RSA3072, RSA4096:
		return []EncryptionAlgorithm{AlgRSAESOAEPSHA1, AlgRSAESOAEPSHA256}
	case SM2:
		return []EncryptionAlgorithm{AlgSM2PKE}
	}
	return nil
}

// Known reports whether u is a key usage AWS KMS defines.
func (u Usage) Known() bool {
	switch u {
	case EncryptDecrypt, SignVerify, GenerateVerifyMAC, KeyAgreement:
		return true
	}
	return false
}

// Known reports whether a is an encryption algorithm AWS KMS defines.
func (a EncryptionAlgorithm) Known() bool {
	switch a {
	case AlgSymmetricDefault, AlgRSAESOAEPSHA1, AlgRSAESOAEPSHA256, AlgSM2PKE:
		return true
	}
	return false
}

// allowedUsages is the CreateKey documentation's table of spec → usages.
var allowedUsages = map[Spec][]Usage{
	SymmetricDefault: {EncryptDecrypt},
	RSA2048:          {EncryptDecrypt, SignVerify},
	RSA3072:          {EncryptDecrypt, SignVerify},
	RSA4096:          {EncryptDecrypt, SignVerify},
	ECCNISTP256:      {SignVerify, KeyAgreement},
	ECCNISTP384:      {SignVerify, KeyAgreement},
	ECCNISTP521:      {SignVerify, KeyAgreement},
	ECCSECGP256K1:    {SignVerify},
	ECCEdwards25519:  {SignVerify},
	HMAC224:          {GenerateVerifyMAC},
	HMAC256:          {GenerateVerifyMAC},
	HMAC384:          {GenerateVerifyMAC},
	HMAC512:          {GenerateVerifyMAC},
	SM2:              {EncryptDecrypt, SignVerify, KeyAgreement},
	MLDSA44:          {SignVerify},
	MLDSA65:          {SignVerify},
	MLDSA87:          {SignVerify},
}
