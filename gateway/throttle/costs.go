package throttle

import "strings"

// Costs are estimates of the CPU a request takes, in microseconds, for
// weighting fair shares (Fair). BenchmarkCrypto measures the cryptography
// behind them; the figures below are its results on a 2-core AMD EPYC
// (Go 1.26), rounded:
//
//	key generation (with the first parse)  RSA_2048 55 ms, RSA_3072 257 ms, RSA_4096 683 ms,
//	                                       P-256 0.05 ms, P-384 0.5 ms, P-521 1.1 ms, secp256k1 0.5 ms
//	RSA private key operation (sign, OAEP decrypt)  2048: 1.0 ms, 3072: 2.8 ms, 4096: 6.0 ms
//	RSA public key operation (verify, encrypt)      2048: 0.03 ms, 3072: 0.17 ms, 4096: 0.31 ms
//	ECDSA sign / verify  P-256 0.04 / 0.07 ms, P-384 0.22 / 0.61 ms, P-521 0.60 / 2.0 ms,
//	                     secp256k1 0.04 / 0.16 ms; Ed25519 0.03 / 0.07 ms
//	ML-DSA-87 sign / verify  0.85 / 0.27 ms
//	AES-256-GCM (1 KiB, per-message key), HMAC-SHA-256  0.004, 0.002 ms
//
// Everything else a request costs (HTTP, SigV4, JSON, authorization,
// recording its event) is BaseCost: about 100 µs of the instance's CPU per
// Encrypt at 64 connections on the same machine (4.3 s of CPU for 40,000
// requests). A Sign or Decrypt names its algorithm but not its key's size,
// so RSA private key operations are charged as RSA_4096's.
const (
	// BaseCost is what every request costs beyond its cryptography, µs.
	BaseCost = 100
	// LongCost is the cost from which a request burns a core long enough
	// (RSA key generation) that only Cores of them may run at once.
	LongCost = 20_000
)

// keygenCost is the cost of generating (and first parsing) a key of spec.
var keygenCost = map[string]int64{
	"RSA_2048": 55_000, "RSA_3072": 257_000, "RSA_4096": 683_000,
	"ECC_NIST_P256": 50, "ECC_NIST_P384": 500, "ECC_NIST_P521": 1_100, "ECC_SECG_P256K1": 500,
	"ECC_NIST_EDWARDS25519": 100, "ML_DSA_44": 300, "ML_DSA_65": 400, "ML_DSA_87": 550, "SM2": 500,
}

const (
	rsaPrivateCost = 6_000 // sign or OAEP decrypt, charged as RSA_4096
	rsaPublicCost  = 300
)

// signCost and verifyCost are the costs of signing and verifying with an
// algorithm (ECDSA_SHA_256 on P-256 or secp256k1, SHA-384 usually on
// P-384, SHA-512 on P-521).
func signCost(alg string) int64 {
	switch {
	case strings.HasPrefix(alg, "RSASSA_"):
		return rsaPrivateCost
	case alg == "ECDSA_SHA_384":
		return 220
	case alg == "ECDSA_SHA_512":
		return 600
	case strings.HasPrefix(alg, "ML_DSA_"):
		return 850
	}
	return 50
}

func verifyCost(alg string) int64 {
	switch {
	case strings.HasPrefix(alg, "RSASSA_"):
		return rsaPublicCost
	case alg == "ECDSA_SHA_384":
		return 610
	case alg == "ECDSA_SHA_512":
		return 2_000
	case strings.HasPrefix(alg, "ML_DSA_"):
		return 270
	}
	return 160
}

// CostOf estimates what a request costs the instance, in µs of CPU. arg is
// what decides it, as for FamilyOf: the encryption or signing algorithm,
// the key pair spec (GenerateDataKeyPair*), the key spec (CreateKey) or
// the wrapping key spec (GetParametersForImport, which generates one).
func CostOf(op, arg string) int64 {
	switch op {
	case "CreateKey", "GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "GetParametersForImport":
		return BaseCost + keygenCost[arg]
	case "Sign":
		return BaseCost + signCost(arg)
	case "Verify":
		return BaseCost + verifyCost(arg)
	case "Decrypt", "ReEncrypt", "ImportKeyMaterial":
		if strings.HasPrefix(arg, "RSAES_") || op == "ImportKeyMaterial" {
			return BaseCost + rsaPrivateCost
		}
	case "Encrypt":
		if strings.HasPrefix(arg, "RSAES_") {
			return BaseCost + rsaPublicCost
		}
	case "DeriveSharedSecret":
		return BaseCost + 600
	}
	return BaseCost
}
