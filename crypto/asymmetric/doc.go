// Package asymmetric generates, parses and uses the private keys of AWS KMS
// asymmetric key specs: RSA, NIST ECC, secp256k1, Ed25519 and ML-DSA.
//
// Key material is PKCS#8 DER (an ML-DSA key is its 32-byte seed, as FIPS 204
// defines the private key), always held in a secret.Bytes; a parsed
// PrivateKey keeps the key in unexported fields and never prints it. Public
// keys leave as DER SubjectPublicKeyInfo, which is what GetPublicKey returns.
//
// Failures callers branch on are sentinels: ErrInvalidSignature for a
// signature that does not verify, ErrDecrypt for any RSA decryption failure
// (one opaque error), *InputError for a message the algorithm cannot take.
// A PrivateKey is safe for concurrent use.
package asymmetric
