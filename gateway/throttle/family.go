package throttle

import "strings"

// FamilyOf returns the quota family a request counts against. algorithm is
// the request's EncryptionAlgorithm (Encrypt, Decrypt, ReEncrypt),
// SigningAlgorithm (Sign, Verify) or KeyPairSpec (GenerateDataKeyPair*):
// AWS charges cryptographic requests by the key's type, which these name
// without a lookup. op must be an operation the gateway serves, so the set of
// families (and of buckets) stays bounded.
func FamilyOf(op, algorithm string) string {
	switch op {
	case "Encrypt", "Decrypt", "ReEncrypt":
		if strings.HasPrefix(algorithm, "RSAES_") {
			return RSA
		}
		return Symmetric
	case "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "GenerateMac", "VerifyMac", "GenerateRandom":
		return Symmetric
	case "Sign", "Verify":
		switch {
		case strings.HasPrefix(algorithm, "RSASSA_"):
			return RSA
		case strings.HasPrefix(algorithm, "ML_DSA_"):
			return MLDSA
		}
		return ECC
	case "DeriveSharedSecret":
		return ECC
	case "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext":
		f := DataKeyPairFamily(algorithm)
		if _, ok := defaultQuotas[f]; !ok {
			// An unknown spec is refused by validation; charge it to a
			// known bucket rather than make one per spelling.
			return DataKeyPairFamily("ECC_NIST_P256")
		}
		return f
	}
	return op
}
