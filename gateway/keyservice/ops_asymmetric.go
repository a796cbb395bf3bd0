package keyservice

import (
	"context"
	"encoding/base64"
	"slices"

	"github.com/keyledger/keyledger/crypto/asymmetric"
	"github.com/keyledger/keyledger/crypto/keyspec"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/projections/keystate"
)

const maxMessage = 4096

// GetPublicKeyInput and GetPublicKeyOutput are the AWS GetPublicKey members.
type (
	GetPublicKeyInput struct {
		KeyId       string   `json:"KeyId"`
		GrantTokens []string `json:"GrantTokens"`
	}

	GetPublicKeyOutput struct {
		KeyId                  string   `json:"KeyId"`
		PublicKey              []byte   `json:"PublicKey"`
		CustomerMasterKeySpec  string   `json:"CustomerMasterKeySpec,omitempty"`
		KeySpec                string   `json:"KeySpec"`
		KeyUsage               string   `json:"KeyUsage"`
		EncryptionAlgorithms   []string `json:"EncryptionAlgorithms,omitempty"`
		SigningAlgorithms      []string `json:"SigningAlgorithms,omitempty"`
		KeyAgreementAlgorithms []string `json:"KeyAgreementAlgorithms,omitempty"`
	}
)

// GetPublicKey returns an asymmetric key's public key as DER
// SubjectPublicKeyInfo, with what it may be used for.
func (s *Service) GetPublicKey(ctx context.Context, c Caller, in *GetPublicKeyInput) (*GetPublicKeyOutput, error) {
	defer s.shared()()
	ev := s.newEvent(c, "GetPublicKey")
	k, err := s.asymmetricKey(c, in.KeyId, in.GrantTokens, request{action: "kms:GetPublicKey"})
	ev.KeyID = k.ID
	if err == nil {
		err = s.usable(k, k.Usage)
	}
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	pub, err := base64.StdEncoding.DecodeString(k.PublicKey)
	if err != nil || len(pub) == 0 {
		return nil, s.refuse(ctx, ev, errorf(CodeInvalidState, "%s has no public key yet.", s.arnOf(k)))
	}
	if err := s.record(ctx, ev); err != nil {
		return nil, err
	}
	md := s.metadata(k)
	return &GetPublicKeyOutput{KeyId: s.arnOf(k), PublicKey: pub, CustomerMasterKeySpec: md.CustomerMasterKeySpec,
		KeySpec: md.KeySpec, KeyUsage: md.KeyUsage, EncryptionAlgorithms: md.EncryptionAlgorithms,
		SigningAlgorithms: md.SigningAlgorithms, KeyAgreementAlgorithms: md.KeyAgreementAlgorithms}, nil
}

// asymmetricKey resolves a key that must be asymmetric.
func (s *Service) asymmetricKey(c Caller, ref string, grantTokens []string, r request) (keystate.Key, error) {
	if err := s.checkGrantTokens(grantTokens); err != nil {
		return keystate.Key{}, err
	}
	k, err := s.use(c, ref, true, r)
	if err != nil {
		return k, err
	}
	if !k.Spec.IsAsymmetric() {
		return k, errorf(CodeUnsupportedOperation, "%s is not an asymmetric KMS key.", s.arnOf(k))
	}
	return k, nil
}

// SignInput and SignOutput are the AWS Sign members.
type (
	SignInput struct {
		KeyId            string   `json:"KeyId"`
		Message          []byte   `json:"Message"`
		MessageType      string   `json:"MessageType"`
		GrantTokens      []string `json:"GrantTokens"`
		SigningAlgorithm string   `json:"SigningAlgorithm"`
		DryRun           bool     `json:"DryRun"`
	}

	SignOutput struct {
		KeyId            string `json:"KeyId"`
		Signature        []byte `json:"Signature"`
		SigningAlgorithm string `json:"SigningAlgorithm"`
	}
)

// Sign signs a message or digest with a SIGN_VERIFY key.
func (s *Service) Sign(ctx context.Context, c Caller, in *SignInput) (*SignOutput, error) {
	defer s.shared()()
	ev := s.newEvent(c, "Sign")
	call := &event.APICall{Params: map[string]string{"signingAlgorithm": in.SigningAlgorithm, "messageType": messageType(in.MessageType)}}
	ev.Body = call
	k, m, err := s.signingKey(c, "kms:Sign", in.KeyId, in.GrantTokens, in.Message, in.MessageType, in.SigningAlgorithm)
	ev.KeyID, call.MaterialID = k.ID, m.ID
	if err == nil && in.DryRun {
		err = errDryRun
	}
	var sig []byte
	if err == nil {
		var pk *asymmetric.PrivateKey
		if pk, err = s.privateKey(ctx, k, m); err == nil {
			sig, err = pk.Sign(keyspec.SigningAlgorithm(in.SigningAlgorithm), keyspec.MessageType(messageType(in.MessageType)), in.Message)
		}
	}
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	if err := s.record(ctx, ev); err != nil {
		return nil, err
	}
	return &SignOutput{KeyId: s.arnOf(k), Signature: sig, SigningAlgorithm: in.SigningAlgorithm}, nil
}

// signingAlgorithms is SigningAlgorithmSpec in the AWS API model's order.
var signingAlgorithms = []string{"RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512",
	"RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512",
	"ECDSA_SHA_256", "ECDSA_SHA_384", "ECDSA_SHA_512", "SM2DSA", "ML_DSA_SHAKE_256", "ED25519_SHA_512", "ED25519_PH_SHA_512"}

func messageType(mt string) string {
	if mt == "" {
		return string(keyspec.Raw)
	}
	return mt
}

// signingKey validates a Sign or Verify request and resolves its key.
func (s *Service) signingKey(c Caller, action, ref string, grantTokens []string, msg []byte, mt, alg string) (keystate.Key, keystate.Material, error) {
	if err := checkBlob("message", msg, maxMessage); err != nil {
		return keystate.Key{}, keystate.Material{}, err
	}
	switch keyspec.MessageType(messageType(mt)) {
	case keyspec.Raw, keyspec.Digest, keyspec.ExternalMu:
	default:
		return keystate.Key{}, keystate.Material{}, notInEnum("messageType", mt, "RAW", "DIGEST", "EXTERNAL_MU")
	}
	if alg == "" {
		return keystate.Key{}, keystate.Material{}, missing("signingAlgorithm")
	}
	if !slices.Contains(signingAlgorithms, alg) {
		return keystate.Key{}, keystate.Material{}, notInEnum("signingAlgorithm", alg, signingAlgorithms...)
	}
	k, err := s.asymmetricKey(c, ref, grantTokens, request{action: action,
		signingAlgorithm: alg, messageType: messageType(mt)})
	if err != nil {
		if e := AsError(err); e.Code == CodeUnsupportedOperation {
			err = errorf(CodeInvalidKeyUsage, "%s key usage is %s which is not valid for signing.", s.arnOf(k), k.Usage)
		}
		return k, keystate.Material{}, err
	}
	if err := s.usable(k, keyspec.SignVerify); err != nil {
		return k, keystate.Material{}, err
	}
	for _, a := range k.Spec.SigningAlgorithms(k.Usage) {
		if string(a) == alg {
			return k, k.CurrentMaterial(), nil
		}
	}
	return k, keystate.Material{}, errorf(CodeInvalidKeyUsage, "The signing algorithm %s is not valid for %s (%s).", alg, s.arnOf(k), k.Spec)
}

// VerifyInput and VerifyOutput are the AWS Verify members.
type (
	VerifyInput struct {
		KeyId            string   `json:"KeyId"`
		Message          []byte   `json:"Message"`
		MessageType      string   `json:"MessageType"`
		Signature        []byte   `json:"Signature"`
		SigningAlgorithm string   `json:"SigningAlgorithm"`
		GrantTokens      []string `json:"GrantTokens"`
		DryRun           bool     `json:"DryRun"`
	}

	VerifyOutput struct {
		KeyId            string `json:"KeyId"`
		SignatureValid   bool   `json:"SignatureValid"`
		SigningAlgorithm string `json:"SigningAlgorithm"`
	}
)

// Verify checks a signature; one that does not verify is
// KMSInvalidSignatureException, as AWS answers.
func (s *Service) Verify(ctx context.Context, c Caller, in *VerifyInput) (*VerifyOutput, error) {
	defer s.shared()()
	ev := s.newEvent(c, "Verify")
	call := &event.APICall{Params: map[string]string{"signingAlgorithm": in.SigningAlgorithm, "messageType": messageType(in.MessageType)}}
	ev.Body = call
	k, m, err := s.signingKey(c, "kms:Verify", in.KeyId, in.GrantTokens, in.Message, in.MessageType, in.SigningAlgorithm)
	ev.KeyID, call.MaterialID = k.ID, m.ID
	if err == nil {
		err = checkBlob("signature", in.Signature, 6144)
	}
	if err == nil && in.DryRun {
		err = errDryRun
	}
	if err == nil {
		var pk *asymmetric.PrivateKey
		if pk, err = s.privateKey(ctx, k, m); err == nil {
			err = pk.Verify(keyspec.SigningAlgorithm(in.SigningAlgorithm), keyspec.MessageType(messageType(in.MessageType)), in.Message, in.Signature)
		}
		if err == asymmetric.ErrInvalidSignature {
			err = errorf(CodeInvalidSignature, "The signature is not valid for this key, message and signing algorithm.")
		}
	}
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	if err := s.record(ctx, ev); err != nil {
		return nil, err
	}
	return &VerifyOutput{KeyId: s.arnOf(k), SignatureValid: true, SigningAlgorithm: in.SigningAlgorithm}, nil
}

// DeriveSharedSecretInput and DeriveSharedSecretOutput are the AWS
// DeriveSharedSecret members.
type (
	DeriveSharedSecretInput struct {
		KeyId                 string   `json:"KeyId"`
		KeyAgreementAlgorithm string   `json:"KeyAgreementAlgorithm"`
		PublicKey             []byte   `json:"PublicKey"`
		GrantTokens           []string `json:"GrantTokens"`
		DryRun                bool     `json:"DryRun"`
		Recipient             any      `json:"Recipient"`
	}

	DeriveSharedSecretOutput struct {
		KeyId                 string `json:"KeyId"`
		SharedSecret          []byte `json:"SharedSecret"`
		KeyAgreementAlgorithm string `json:"KeyAgreementAlgorithm"`
		KeyOrigin             string `json:"KeyOrigin"`
	}
)

// DeriveSharedSecret runs ECDH between a KEY_AGREEMENT key and a peer's
// public key.
func (s *Service) DeriveSharedSecret(ctx context.Context, c Caller, in *DeriveSharedSecretInput) (*DeriveSharedSecretOutput, error) {
	defer s.shared()()
	ev := s.newEvent(c, "DeriveSharedSecret")
	call := &event.APICall{Params: map[string]string{"keyAgreementAlgorithm": in.KeyAgreementAlgorithm}}
	ev.Body = call
	var k keystate.Key
	err := func() error {
		switch {
		case in.Recipient != nil:
			return errorf(CodeUnsupportedOperation, "Recipient (Nitro Enclaves attestation) is not supported.")
		case in.KeyAgreementAlgorithm == "":
			return missing("keyAgreementAlgorithm")
		case in.KeyAgreementAlgorithm != keyspec.ECDH:
			return notInEnum("keyAgreementAlgorithm", in.KeyAgreementAlgorithm, keyspec.ECDH)
		}
		if err := checkBlob("publicKey", in.PublicKey, 8192); err != nil {
			return err
		}
		var err error
		if k, err = s.asymmetricKey(c, in.KeyId, in.GrantTokens, request{action: "kms:DeriveSharedSecret",
			extra: map[string]string{"kms:keyagreementalgorithm": in.KeyAgreementAlgorithm}}); err != nil {
			return err
		}
		return s.usable(k, keyspec.KeyAgreement)
	}()
	ev.KeyID = k.ID
	if err == nil && in.DryRun {
		err = errDryRun
	}
	var shared []byte
	if err == nil {
		m := k.CurrentMaterial()
		call.MaterialID = m.ID
		var pk *asymmetric.PrivateKey
		if pk, err = s.privateKey(ctx, k, m); err == nil {
			sec, e := pk.SharedSecret(in.PublicKey)
			err, shared = e, sec.Expose()
		}
	}
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	if err := s.record(ctx, ev); err != nil {
		clear(shared)
		return nil, err
	}
	return &DeriveSharedSecretOutput{KeyId: s.arnOf(k), SharedSecret: shared, KeyAgreementAlgorithm: keyspec.ECDH, KeyOrigin: k.Origin}, nil
}

// GenerateDataKeyPairInput and GenerateDataKeyPairOutput are the AWS
// GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext members.
type (
	GenerateDataKeyPairInput struct {
		EncryptionContext map[string]string `json:"EncryptionContext"`
		KeyId             string            `json:"KeyId"`
		KeyPairSpec       string            `json:"KeyPairSpec"`
		GrantTokens       []string          `json:"GrantTokens"`
		Recipient         any               `json:"Recipient"`
		DryRun            bool              `json:"DryRun"`
	}

	GenerateDataKeyPairOutput struct {
		PrivateKeyCiphertextBlob []byte `json:"PrivateKeyCiphertextBlob"`
		PrivateKeyPlaintext      []byte `json:"PrivateKeyPlaintext,omitempty"`
		PublicKey                []byte `json:"PublicKey"`
		KeyId                    string `json:"KeyId"`
		KeyPairSpec              string `json:"KeyPairSpec"`
		KeyMaterialId            string `json:"KeyMaterialId"`
	}
)

// GenerateDataKeyPair returns a new key pair: the public key, the private
// key (PKCS#8 DER) encrypted under a symmetric KMS key, and in plaintext.
func (s *Service) GenerateDataKeyPair(ctx context.Context, c Caller, in *GenerateDataKeyPairInput) (*GenerateDataKeyPairOutput, error) {
	return s.generateDataKeyPair(ctx, c, "GenerateDataKeyPair", in, true)
}

// GenerateDataKeyPairWithoutPlaintext is GenerateDataKeyPair without the
// plaintext private key.
func (s *Service) GenerateDataKeyPairWithoutPlaintext(ctx context.Context, c Caller, in *GenerateDataKeyPairInput) (*GenerateDataKeyPairOutput, error) {
	return s.generateDataKeyPair(ctx, c, "GenerateDataKeyPairWithoutPlaintext", in, false)
}

func (s *Service) generateDataKeyPair(ctx context.Context, c Caller, op string, in *GenerateDataKeyPairInput, withPlaintext bool) (*GenerateDataKeyPairOutput, error) {
	ev := s.newEvent(c, op)
	call := &event.APICall{EncryptionContext: in.EncryptionContext, DataKeySpec: in.KeyPairSpec}
	ev.Body = call
	spec := keyspec.Spec(in.KeyPairSpec)
	err := func() error {
		switch {
		case in.Recipient != nil:
			return errorf(CodeUnsupportedOperation, "Recipient (Nitro Enclaves attestation) is not supported.")
		case in.KeyPairSpec == "":
			return missing("keyPairSpec")
		case spec == keyspec.SM2:
			return errorf(CodeUnsupportedOperation, "KeyPairSpec SM2 is only available in China Regions.")
		}
		for _, ok := range keyspec.DataKeyPairSpecs {
			if ok == spec {
				return nil
			}
		}
		return notInEnum("keyPairSpec", in.KeyPairSpec, "RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384",
			"ECC_NIST_P521", "ECC_SECG_P256K1", "SM2", "ECC_NIST_EDWARDS25519")
	}()
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	authz := request{action: "kms:" + op, encCtx: in.EncryptionContext, extra: map[string]string{"kms:datakeypairspec": in.KeyPairSpec}}
	// Check the key and the caller first, so a refused request costs no key
	// generation; generate before taking the lock (RSA takes up to seconds);
	// then check again under the lock.
	if k, _, err := s.encryptionKey(c, in.KeyId, "", in.GrantTokens, true, authz); err != nil {
		ev.KeyID = k.ID
		return nil, s.refuse(ctx, ev, err)
	}
	privSecret, err := asymmetric.Generate(spec)
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	defer privSecret.Clear()
	pair, err := asymmetric.Parse(spec, privSecret)
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	pub := pair.PublicKeyDER()
	defer s.shared()()
	k, m, err := s.encryptionKey(c, in.KeyId, "", in.GrantTokens, true, authz)
	ev.KeyID, call.MaterialID = k.ID, m.ID
	if err == nil && in.DryRun {
		err = errDryRun
	}
	var blob []byte
	if err == nil {
		blob, err = s.seal(ctx, k, m, "", privSecret.Expose(), in.EncryptionContext)
	}
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	if err := s.record(ctx, ev); err != nil {
		return nil, err
	}
	var priv []byte
	if withPlaintext {
		priv = append([]byte(nil), privSecret.Expose()...)
	}
	return &GenerateDataKeyPairOutput{PrivateKeyCiphertextBlob: blob, PrivateKeyPlaintext: priv, PublicKey: pub,
		KeyId: s.arnOf(k), KeyPairSpec: in.KeyPairSpec, KeyMaterialId: m.ID}, nil
}
