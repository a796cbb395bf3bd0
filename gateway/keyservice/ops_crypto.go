package keyservice

import (
	"context"

	"github.com/keyledger/keyledger/crypto/ciphertext"
	"github.com/keyledger/keyledger/crypto/keyspec"
	"github.com/keyledger/keyledger/crypto/secret"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/projections/keystate"
)

const (
	maxPlaintext  = 4096
	maxCiphertext = 6144
	maxDataKey    = 1024
)

var errDryRun = &Error{Code: CodeDryRun, Message: "The request would have succeeded, but the DryRun option is set."}

// EncryptInput and EncryptOutput are the AWS Encrypt members.
type (
	EncryptInput struct {
		KeyId               string            `json:"KeyId"`
		Plaintext           []byte            `json:"Plaintext"`
		EncryptionContext   map[string]string `json:"EncryptionContext"`
		GrantTokens         []string          `json:"GrantTokens"`
		EncryptionAlgorithm string            `json:"EncryptionAlgorithm"`
		DryRun              bool              `json:"DryRun"`
	}

	EncryptOutput struct {
		CiphertextBlob      []byte `json:"CiphertextBlob"`
		KeyId               string `json:"KeyId"`
		EncryptionAlgorithm string `json:"EncryptionAlgorithm"`
	}
)

// Encrypt seals up to 4096 bytes under the key's current material.
func (s *Service) Encrypt(ctx context.Context, c Caller, in *EncryptInput) (*EncryptOutput, error) {
	defer s.shared()()
	ev := s.newEvent(c, "Encrypt")
	call := &event.APICall{EncryptionAlgorithm: string(keyspec.AlgSymmetricDefault), EncryptionContext: in.EncryptionContext}
	ev.Body = call
	if err := checkBlob("plaintext", in.Plaintext, maxPlaintext); err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	k, m, err := s.encryptionKey(c, in.KeyId, in.EncryptionAlgorithm, in.GrantTokens, false,
		request{action: "kms:Encrypt", encCtx: in.EncryptionContext})
	ev.KeyID = k.ID
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	call.MaterialID = m.ID
	if in.EncryptionAlgorithm != "" {
		call.EncryptionAlgorithm = in.EncryptionAlgorithm
	}
	if in.DryRun {
		return nil, s.refuse(ctx, ev, errDryRun)
	}
	blob, err := s.seal(ctx, k, m, in.EncryptionAlgorithm, in.Plaintext, in.EncryptionContext)
	clear(in.Plaintext)
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	if err := s.record(ctx, ev); err != nil {
		return nil, err
	}
	return &EncryptOutput{CiphertextBlob: blob, KeyId: s.arnOf(k), EncryptionAlgorithm: call.EncryptionAlgorithm}, nil
}

// encryptionKey resolves the key for a symmetric encryption and checks its
// state, usage and the requested algorithm. The key is returned (for the
// event to name) whenever it was found, even if it may not be used.
func (s *Service) encryptionKey(c Caller, ref, alg string, grantTokens []string, symmetricOnly bool, r request) (keystate.Key, keystate.Material, error) {
	if err := s.checkGrantTokens(grantTokens); err != nil {
		return keystate.Key{}, keystate.Material{}, err
	}
	r.encryptionAlgorithm = string(keyspec.AlgSymmetricDefault)
	if alg != "" {
		r.encryptionAlgorithm = alg
	}
	k, err := s.use(c, ref, true, r)
	if err != nil {
		return k, keystate.Material{}, err
	}
	if symmetricOnly && k.Spec != keyspec.SymmetricDefault {
		return k, keystate.Material{}, errorf(CodeInvalidKeyUsage, "%s is not a symmetric encryption key; this operation needs one.", s.arnOf(k))
	}
	if err := s.usable(k, keyspec.EncryptDecrypt); err != nil {
		return k, keystate.Material{}, err
	}
	if err := s.checkAlgorithm(k, alg); err != nil {
		return k, keystate.Material{}, err
	}
	return k, k.CurrentMaterial(), nil
}

func (s *Service) checkAlgorithm(k keystate.Key, alg string) error {
	if alg == "" {
		if k.Spec.IsAsymmetric() {
			return errorf(CodeValidation, "EncryptionAlgorithm is required for asymmetric KMS keys.")
		}
		return nil
	}
	a := keyspec.EncryptionAlgorithm(alg)
	if !a.Known() {
		return notInEnum("encryptionAlgorithm", alg, "SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE")
	}
	for _, allowed := range k.Spec.EncryptionAlgorithms(k.Usage) {
		if allowed == a {
			return nil
		}
	}
	return errorf(CodeInvalidKeyUsage, "The encryption algorithm %s is not compatible with the type of %s.", alg, s.arnOf(k))
}

// seal encrypts under k's material m: a keyledger ciphertext blob for a
// symmetric key, raw RSAES-OAEP for an RSA key (with alg, and no context).
func (s *Service) seal(ctx context.Context, k keystate.Key, m keystate.Material, alg string, plaintext []byte, encCtx map[string]string) ([]byte, error) {
	if k.Spec.IsAsymmetric() {
		if len(encCtx) > 0 {
			return nil, errorf(CodeValidation, "EncryptionContext is not supported with asymmetric KMS keys.")
		}
		pk, err := s.privateKey(ctx, k, m)
		if err != nil {
			return nil, err
		}
		return pk.Encrypt(keyspec.EncryptionAlgorithm(alg), plaintext)
	}
	sec, err := s.unwrapped(ctx, m)
	if err != nil {
		return nil, err
	}
	return ciphertext.Seal(ciphertext.Header{KeyID: k.ID, MaterialID: m.ID}, sec, plaintext, encCtx), nil
}

func checkBlob(member string, b []byte, max int) error {
	if b == nil {
		return missing(member)
	}
	if len(b) < 1 {
		return blobTooShort(member, 1)
	}
	if len(b) > max {
		return blobTooLong(member, max)
	}
	return nil
}

// checkGrantTokens validates the GrantTokens of a request: each must be a
// token of a live grant. (Grants take effect at once here, so a token adds
// no permission; it only must not be forged.)
func (s *Service) checkGrantTokens(tokens []string) error {
	if len(tokens) > 10 {
		return blobTooLong("grantTokens", 10)
	}
	for _, t := range tokens {
		if len(t) < 1 || len(t) > 8192 {
			return constraint("grantTokens", nil, "Member must have length between 1 and 8192") // a token is a secret
		}
		if _, ok := s.state.GrantByTokenHash(tokenHash(t)); !ok {
			return errorf(CodeInvalidGrantToken, "The grant token is not valid.")
		}
	}
	return nil
}

// DecryptInput and DecryptOutput are the AWS Decrypt members.
type (
	DecryptInput struct {
		CiphertextBlob      []byte            `json:"CiphertextBlob"`
		EncryptionContext   map[string]string `json:"EncryptionContext"`
		GrantTokens         []string          `json:"GrantTokens"`
		KeyId               string            `json:"KeyId"`
		EncryptionAlgorithm string            `json:"EncryptionAlgorithm"`
		Recipient           any               `json:"Recipient"`
		DryRun              bool              `json:"DryRun"`
		DryRunModifiers     []string          `json:"DryRunModifiers"`
	}

	DecryptOutput struct {
		KeyId               string `json:"KeyId"`
		Plaintext           []byte `json:"Plaintext"`
		EncryptionAlgorithm string `json:"EncryptionAlgorithm"`
		KeyMaterialId       string `json:"KeyMaterialId"`
	}
)

// Decrypt opens a blob made by Encrypt or GenerateDataKey*. The blob names
// its key, so KeyId is optional; if given it must name the same key.
func (s *Service) Decrypt(ctx context.Context, c Caller, in *DecryptInput) (*DecryptOutput, error) {
	defer s.shared()()
	ev := s.newEvent(c, "Decrypt")
	call := &event.APICall{EncryptionAlgorithm: string(keyspec.AlgSymmetricDefault), EncryptionContext: in.EncryptionContext}
	ev.Body = call
	if in.Recipient != nil {
		return nil, s.refuse(ctx, ev, errorf(CodeUnsupportedOperation, "Recipient (Nitro Enclaves attestation) is not supported."))
	}
	if err := s.checkGrantTokens(in.GrantTokens); err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	opened, err := s.open(ctx, openRequest{caller: c, ev: ev, action: "kms:Decrypt", blob: in.CiphertextBlob,
		keyRef: in.KeyId, alg: in.EncryptionAlgorithm, encCtx: in.EncryptionContext, dryRun: in.DryRun})
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	call.MaterialID = opened.material.ID
	call.EncryptionAlgorithm = opened.algorithm
	if err := s.record(ctx, ev); err != nil {
		clear(opened.plaintext)
		return nil, err
	}
	return &DecryptOutput{KeyId: s.arnOf(opened.key), Plaintext: opened.plaintext,
		EncryptionAlgorithm: call.EncryptionAlgorithm, KeyMaterialId: opened.material.ID}, nil
}

// openRequest is a blob to authenticate and decrypt, as Decrypt and the
// source side of ReEncrypt ask for it.
type openRequest struct {
	caller Caller
	ev     *event.Event // open names the blob's key on it
	action string       // kms:Decrypt or kms:ReEncryptFrom
	blob   []byte
	keyRef string // the KeyId the request names, or ""
	alg    string // the EncryptionAlgorithm the request names, or ""
	encCtx map[string]string
	dryRun bool
}

type openedBlob struct {
	key       keystate.Key
	material  keystate.Material
	algorithm string
	plaintext []byte
}

// open authenticates and decrypts a blob, naming its key on ev. Every
// problem with the blob itself is the same InvalidCiphertextException.
func (s *Service) open(ctx context.Context, r openRequest) (openedBlob, error) {
	var o openedBlob
	if err := checkBlob("ciphertextBlob", r.blob, maxCiphertext); err != nil {
		return o, err
	}
	invalid := errorf(CodeInvalidCiphertext, "The ciphertext is invalid, or was not made with this key and encryption context.")
	namedID := "" // the key the request names, if it names one
	if r.keyRef != "" {
		named, err := s.resolve(r.caller, r.keyRef, true)
		if err != nil {
			return o, err
		}
		if named.Spec.IsAsymmetric() {
			return s.openAsymmetric(ctx, r, named)
		}
		namedID = named.ID
	}
	h, err := ciphertext.ParseHeader(r.blob)
	if err != nil {
		return o, invalid
	}
	k, ok := s.state.Key(h.KeyID)
	if !ok {
		if s.state.WasDeleted(h.KeyID) {
			return o, errorf(CodeNotFound, "Key '%s' does not exist", s.keyArn(r.caller.Account, h.KeyID))
		}
		return o, invalid
	}
	r.ev.KeyID = k.ID
	decAlg := r.alg
	if decAlg == "" {
		decAlg = string(keyspec.AlgSymmetricDefault)
	}
	if err := s.authorize(r.caller, request{action: r.action, key: &k, ref: r.keyRef, encCtx: r.encCtx,
		encryptionAlgorithm: decAlg}); err != nil {
		return o, err
	}
	if namedID != "" && namedID != k.ID {
		return o, errorf(CodeIncorrectKey, "The key ID in the request does not identify a KMS key that can perform this operation.")
	}
	if err := s.checkAlgorithm(k, r.alg); err != nil {
		return o, err
	}
	if err := s.usable(k, keyspec.EncryptDecrypt); err != nil {
		return o, err
	}
	m, ok := k.Material(h.MaterialID)
	if !ok {
		return o, invalid
	}
	if r.dryRun {
		return o, errDryRun
	}
	sec, err := s.unwrapped(ctx, m)
	if err != nil {
		return o, err
	}
	pt, err := ciphertext.Open(r.blob, sec, r.encCtx)
	if err != nil {
		return o, invalid
	}
	return openedBlob{key: k, material: m, algorithm: string(keyspec.AlgSymmetricDefault), plaintext: pt}, nil
}

// openAsymmetric decrypts raw RSAES-OAEP ciphertext with k, the RSA key
// the request names.
func (s *Service) openAsymmetric(ctx context.Context, r openRequest, k keystate.Key) (openedBlob, error) {
	var o openedBlob
	r.ev.KeyID = k.ID
	if err := s.authorize(r.caller, request{action: r.action, key: &k, ref: r.keyRef, encryptionAlgorithm: r.alg}); err != nil {
		return o, err
	}
	if err := s.usable(k, keyspec.EncryptDecrypt); err != nil {
		return o, err
	}
	if err := s.checkAlgorithm(k, r.alg); err != nil {
		return o, err
	}
	if len(r.encCtx) > 0 {
		return o, errorf(CodeValidation, "EncryptionContext is not supported with asymmetric KMS keys.")
	}
	if r.dryRun {
		return o, errDryRun
	}
	m := k.CurrentMaterial()
	pk, err := s.privateKey(ctx, k, m)
	if err != nil {
		return o, err
	}
	pt, err := pk.Decrypt(keyspec.EncryptionAlgorithm(r.alg), r.blob)
	if err != nil {
		return o, errorf(CodeInvalidCiphertext, "The ciphertext is invalid, or was not made with this key and encryption algorithm.")
	}
	return openedBlob{key: k, material: m, algorithm: r.alg, plaintext: pt}, nil
}

// ReEncryptInput and ReEncryptOutput are the AWS ReEncrypt members.
type (
	ReEncryptInput struct {
		CiphertextBlob                 []byte            `json:"CiphertextBlob"`
		SourceEncryptionContext        map[string]string `json:"SourceEncryptionContext"`
		SourceKeyId                    string            `json:"SourceKeyId"`
		DestinationKeyId               string            `json:"DestinationKeyId"`
		DestinationEncryptionContext   map[string]string `json:"DestinationEncryptionContext"`
		SourceEncryptionAlgorithm      string            `json:"SourceEncryptionAlgorithm"`
		DestinationEncryptionAlgorithm string            `json:"DestinationEncryptionAlgorithm"`
		GrantTokens                    []string          `json:"GrantTokens"`
		DryRun                         bool              `json:"DryRun"`
		DryRunModifiers                []string          `json:"DryRunModifiers"`
	}

	ReEncryptOutput struct {
		CiphertextBlob                 []byte `json:"CiphertextBlob"`
		SourceKeyId                    string `json:"SourceKeyId"`
		KeyId                          string `json:"KeyId"`
		SourceEncryptionAlgorithm      string `json:"SourceEncryptionAlgorithm"`
		DestinationEncryptionAlgorithm string `json:"DestinationEncryptionAlgorithm"`
		SourceKeyMaterialId            string `json:"SourceKeyMaterialId"`
		DestinationKeyMaterialId       string `json:"DestinationKeyMaterialId"`
	}
)

// ReEncrypt decrypts a blob and encrypts its plaintext under another key (or
// the same key's current material) without revealing it.
func (s *Service) ReEncrypt(ctx context.Context, c Caller, in *ReEncryptInput) (*ReEncryptOutput, error) {
	defer s.shared()()
	ev := s.newEvent(c, "ReEncrypt")
	call := &event.APICall{EncryptionAlgorithm: string(keyspec.AlgSymmetricDefault),
		EncryptionContext: in.SourceEncryptionContext, DestinationEncryptionContext: in.DestinationEncryptionContext}
	ev.Body = call
	if err := s.checkGrantTokens(in.GrantTokens); err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	if in.DestinationKeyId == "" {
		return nil, s.refuse(ctx, ev, missing("destinationKeyId"))
	}
	src, err := s.open(ctx, openRequest{caller: c, ev: ev, action: "kms:ReEncryptFrom", blob: in.CiphertextBlob,
		keyRef: in.SourceKeyId, alg: in.SourceEncryptionAlgorithm, encCtx: in.SourceEncryptionContext})
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	defer clear(src.plaintext)
	call.MaterialID = src.material.ID
	dst, dm, err := s.encryptionKey(c, in.DestinationKeyId, in.DestinationEncryptionAlgorithm, nil, false,
		request{action: "kms:ReEncryptTo", encCtx: in.DestinationEncryptionContext})
	call.DestinationKeyID = dst.ID
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	call.DestinationMaterialID = dm.ID
	if in.DryRun {
		return nil, s.refuse(ctx, ev, errDryRun)
	}
	blob, err := s.seal(ctx, dst, dm, in.DestinationEncryptionAlgorithm, src.plaintext, in.DestinationEncryptionContext)
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	if err := s.record(ctx, ev); err != nil {
		return nil, err
	}
	dstAlg := in.DestinationEncryptionAlgorithm
	if dstAlg == "" {
		dstAlg = string(keyspec.AlgSymmetricDefault)
	}
	return &ReEncryptOutput{CiphertextBlob: blob, SourceKeyId: s.arnOf(src.key), KeyId: s.arnOf(dst),
		SourceEncryptionAlgorithm: src.algorithm, DestinationEncryptionAlgorithm: dstAlg,
		SourceKeyMaterialId: src.material.ID, DestinationKeyMaterialId: dm.ID}, nil
}

// GenerateDataKeyInput and GenerateDataKeyOutput are the AWS GenerateDataKey and
// GenerateDataKeyWithoutPlaintext members.
type (
	GenerateDataKeyInput struct {
		KeyId             string            `json:"KeyId"`
		EncryptionContext map[string]string `json:"EncryptionContext"`
		NumberOfBytes     *int32            `json:"NumberOfBytes"`
		KeySpec           string            `json:"KeySpec"`
		GrantTokens       []string          `json:"GrantTokens"`
		Recipient         any               `json:"Recipient"`
		DryRun            bool              `json:"DryRun"`
	}

	GenerateDataKeyOutput struct {
		CiphertextBlob []byte `json:"CiphertextBlob"`
		Plaintext      []byte `json:"Plaintext,omitempty"`
		KeyId          string `json:"KeyId"`
		KeyMaterialId  string `json:"KeyMaterialId"`
	}
)

// GenerateDataKey returns a new data key in plaintext and encrypted.
func (s *Service) GenerateDataKey(ctx context.Context, c Caller, in *GenerateDataKeyInput) (*GenerateDataKeyOutput, error) {
	return s.generateDataKey(ctx, c, "GenerateDataKey", in, true)
}

// GenerateDataKeyWithoutPlaintext returns a new data key, encrypted only.
func (s *Service) GenerateDataKeyWithoutPlaintext(ctx context.Context, c Caller, in *GenerateDataKeyInput) (*GenerateDataKeyOutput, error) {
	return s.generateDataKey(ctx, c, "GenerateDataKeyWithoutPlaintext", in, false)
}

func (s *Service) generateDataKey(ctx context.Context, c Caller, op string, in *GenerateDataKeyInput, withPlaintext bool) (*GenerateDataKeyOutput, error) {
	defer s.shared()()
	ev := s.newEvent(c, op)
	call := &event.APICall{EncryptionContext: in.EncryptionContext, DataKeySpec: in.KeySpec}
	ev.Body = call
	if in.Recipient != nil {
		return nil, s.refuse(ctx, ev, errorf(CodeUnsupportedOperation, "Recipient (Nitro Enclaves attestation) is not supported."))
	}
	k, m, err := s.encryptionKey(c, in.KeyId, "", in.GrantTokens, true, request{action: "kms:" + op, encCtx: in.EncryptionContext})
	ev.KeyID = k.ID
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	call.MaterialID = m.ID
	n, err := dataKeySize(in.KeySpec, in.NumberOfBytes)
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	call.NumberOfBytes = n
	if in.DryRun {
		return nil, s.refuse(ctx, ev, errDryRun)
	}
	dataKey := secret.Random(n)
	blob, err := s.seal(ctx, k, m, "", dataKey.Expose(), in.EncryptionContext)
	if err != nil {
		dataKey.Clear()
		return nil, s.refuse(ctx, ev, err)
	}
	if err := s.record(ctx, ev); err != nil {
		dataKey.Clear()
		return nil, err
	}
	out := &GenerateDataKeyOutput{CiphertextBlob: blob, KeyId: s.arnOf(k), KeyMaterialId: m.ID}
	if withPlaintext {
		out.Plaintext = dataKey.Expose() // handed to the caller; the container is dropped
	} else {
		dataKey.Clear()
	}
	return out, nil
}

func dataKeySize(spec string, n *int32) (int, error) {
	switch {
	case spec != "" && n != nil:
		return 0, errorf(CodeValidation, "Please specify either number of bytes or key spec, not both.")
	case spec == "" && n == nil:
		return 0, errorf(CodeValidation, "Please specify either number of bytes or key spec.")
	case spec == "AES_256":
		return 32, nil
	case spec == "AES_128":
		return 16, nil
	case spec != "":
		return 0, notInEnum("keySpec", spec, "AES_256", "AES_128")
	case *n < 1 || *n > maxDataKey:
		return 0, outOfRange("numberOfBytes", int64(*n), 1, maxDataKey)
	}
	return int(*n), nil
}

// GenerateRandomInput and GenerateRandomOutput are the AWS GenerateRandom
// members.
type (
	GenerateRandomInput struct {
		NumberOfBytes    *int32 `json:"NumberOfBytes"`
		CustomKeyStoreId string `json:"CustomKeyStoreId"`
		Recipient        any    `json:"Recipient"`
	}

	GenerateRandomOutput struct {
		Plaintext []byte `json:"Plaintext"`
	}
)

// GenerateRandom returns 1–1024 random bytes from crypto/rand.
func (s *Service) GenerateRandom(ctx context.Context, c Caller, in *GenerateRandomInput) (*GenerateRandomOutput, error) {
	ev := s.newEvent(c, "GenerateRandom")
	call := &event.APICall{}
	ev.Body = call
	if err := s.authorizeIdentity(c, "kms:GenerateRandom", "*"); err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	switch {
	case in.Recipient != nil:
		return nil, s.refuse(ctx, ev, errorf(CodeUnsupportedOperation, "Recipient (Nitro Enclaves attestation) is not supported."))
	case in.CustomKeyStoreId != "":
		return nil, s.refuse(ctx, ev, errorf(CodeCustomKeyStoreNotFnd, "Custom key store %s does not exist.", in.CustomKeyStoreId))
	case in.NumberOfBytes == nil:
		return nil, s.refuse(ctx, ev, missing("numberOfBytes"))
	case *in.NumberOfBytes < 1 || *in.NumberOfBytes > maxDataKey:
		return nil, s.refuse(ctx, ev, outOfRange("numberOfBytes", int64(*in.NumberOfBytes), 1, maxDataKey))
	}
	call.NumberOfBytes = int(*in.NumberOfBytes)
	if err := s.record(ctx, ev); err != nil {
		return nil, err
	}
	return &GenerateRandomOutput{Plaintext: secret.Random(call.NumberOfBytes).Expose()}, nil
}
