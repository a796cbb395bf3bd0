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

// SigningAlgorithm is an AWS KMS SigningAlgorithmSpec.
type SigningAlgorithm string

const (
	RSASSAPSSSHA256      SigningAlgorithm = "RSASSA_PSS_SHA_256"
	RSASSAPSSSHA384      SigningAlgorithm = "RSASSA_PSS_SHA_384"
	RSASSAPSSSHA512      SigningAlgorithm = "RSASSA_PSS_SHA_512"
	RSASSAPKCS1V15SHA256 SigningAlgorithm = "RSASSA_PKCS1_V1_5_SHA_256"
	RSASSAPKCS1V15SHA384 SigningAlgorithm = "RSASSA_PKCS1_V1_5_SHA_384"
	RSASSAPKCS1V15SHA512 SigningAlgorithm = "RSASSA_PKCS1_V1_5_SHA_512"
	ECDSASHA256          SigningAlgorithm = "ECDSA_SHA_256"
	ECDSASHA384          SigningAlgorithm = "ECDSA_SHA_384"
	ECDSASHA512          SigningAlgorithm = "ECDSA_SHA_512"
	ED25519SHA512        SigningAlgorithm = "ED25519_SHA_512"
	ED25519PHSHA512      SigningAlgorithm = "ED25519_PH_SHA_512"
	MLDSASHAKE256        SigningAlgorithm = "ML_DSA_SHAKE_256"
	SM2DSA               SigningAlgorithm = "SM2DSA"
)

// MACAlgorithm is an AWS KMS MacAlgorithmSpec.
type MACAlgorithm string

const (
	HMACSHA224 MACAlgorithm = "HMAC_SHA_224"
	HMACSHA256 MACAlgorithm = "HMAC_SHA_256"
	HMACSHA384 MACAlgorithm = "HMAC_SHA_384"
	HMACSHA512 MACAlgorithm = "HMAC_SHA_512"
)

// ECDH is the only KeyAgreementAlgorithmSpec.
const ECDH = "ECDH"

// MessageType is how Sign and Verify read their message.
type MessageType string

const (
	Raw        MessageType = "RAW"
	Digest     MessageType = "DIGEST"
	ExternalMu MessageType = "EXTERNAL_MU"
)

// Known reports whether s is a key spec AWS KMS defines.
func (s Spec) Known() bool {
	_, ok := allowedUsages[s]
	return ok
}

// IsHMAC reports whether s is an HMAC key spec.
func (s Spec) IsHMAC() bool {
	return s == HMAC224 || s == HMAC256 || s == HMAC384 || s == HMAC512
}

// IsAsymmetric reports whether s is a public-key spec.
func (s Spec) IsAsymmetric() bool { return s.Known() && s != SymmetricDefault && !s.IsHMAC() }

// SigningAlgorithms lists the signing algorithms of a SIGN_VERIFY key.
func (s Spec) SigningAlgorithms(u Usage) []SigningAlgorithm {
	if u != SignVerify {
		return nil
	}
	switch s {
	case RSA2048, RSA3072, RSA4096:
		return []SigningAlgorithm{RSASSAPSSSHA256, RSASSAPSSSHA384, RSASSAPSSSHA512,
			RSASSAPKCS1V15SHA256, RSASSAPKCS1V15SHA384, RSASSAPKCS1V15SHA512}
	case ECCNISTP256, ECCSECGP256K1:
		return []SigningAlgorithm{ECDSASHA256}
	case ECCNISTP384:
		return []SigningAlgorithm{ECDSASHA384}
	case ECCNISTP521:
		return []SigningAlgorithm{ECDSASHA512}
	case ECCEdwards25519:
		return []SigningAlgorithm{ED25519SHA512, ED25519PHSHA512}
	case MLDSA44, MLDSA65, MLDSA87:
		return []SigningAlgorithm{MLDSASHAKE256}
	case SM2:
		return []SigningAlgorithm{SM2DSA}
	}
	return nil
}

// MACAlgorithms lists the MAC algorithm of an HMAC key.
func (s Spec) MACAlgorithms() []MACAlgorithm {
	switch s {
	case HMAC224:
		return []MACAlgorithm{HMACSHA224}
	case HMAC256:
		return []MACAlgorithm{HMACSHA256}
	case HMAC384:
		return []MACAlgorithm{HMACSHA384}
	case HMAC512:
		return []MACAlgorithm{HMACSHA512}
	}
	return nil
}

// KeyAgreementAlgorithms lists the key agreement algorithms of a
// KEY_AGREEMENT key.
func (s Spec) KeyAgreementAlgorithms(u Usage) []string {
	if u == KeyAgreement {
		return []string{ECDH}
	}
	return nil
}

// HMACKeySize is the length of generated HMAC key material in bytes.
func (s Spec) HMACKeySize() int {
	switch s {
	case HMAC224:
		return 28
	case HMAC256:
		return 32
	case HMAC384:
		return 48
	case HMAC512:
		return 64
	}
	return 0
}

// DataKeyPairSpecs are the key pair specs GenerateDataKeyPair offers.
var DataKeyPairSpecs = []Spec{RSA2048, RSA3072, RSA4096, ECCNISTP256, ECCNISTP384, ECCNISTP521,
	ECCSECGP256K1, SM2, ECCEdwards25519}

// Allows reports whether AWS allows keys of spec s to have usage u.
func (s Spec) Allows(u Usage) bool {
	for _, a := range allowedUsages[s] {
		if a == u {
			return true
		}
	}
	return false
}

// DefaultUsage is the KeyUsage AWS assumes when CreateKey omits it:
// ENCRYPT_DECRYPT, which only some specs allow.
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
