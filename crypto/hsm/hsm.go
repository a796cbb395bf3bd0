//go:build cgo

package hsm

import (
	"crypto/rand"
	"errors"
	"fmt"
	"sync"

	"github.com/miekg/pkcs11"

	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/crypto/secret"
)

// Token is a logged-in session on one PKCS#11 token.
type Token struct {
	mu      sync.Mutex
	ctx     *pkcs11.Ctx
	session pkcs11.SessionHandle
}

// Open loads the PKCS#11 module, finds the token by label and logs in with
// the user PIN.
func Open(module, tokenLabel string, pin secret.Bytes) (*Token, error) {
	ctx := pkcs11.New(module)
	if ctx == nil {
		return nil, fmt.Errorf("hsm: cannot load the PKCS#11 module %s", module)
	}
	if err := ctx.Initialize(); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		ctx.Destroy()
		return nil, fmt.Errorf("hsm: initialize: %w", err)
	}
	fail := func(err error) (*Token, error) {
		ctx.Finalize()
		ctx.Destroy()
		return nil, err
	}
	slots, err := ctx.GetSlotList(true)
	if err != nil {
		return fail(fmt.Errorf("hsm: slots: %w", err))
	}
	for _, slot := range slots {
		info, err := ctx.GetTokenInfo(slot)
		if err != nil || info.Label != tokenLabel {
			continue
		}
		sh, err := ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			return fail(fmt.Errorf("hsm: open session: %w", err))
		}
		if err := ctx.Login(sh, pkcs11.CKU_USER, string(pin.Expose())); err != nil &&
			!errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
			ctx.CloseSession(sh)
			if errors.Is(err, pkcs11.Error(pkcs11.CKR_PIN_INCORRECT)) {
				return fail(ErrPIN)
			}
			return fail(fmt.Errorf("hsm: login: %w", err))
		}
		return &Token{ctx: ctx, session: sh}, nil
	}
	return fail(fmt.Errorf("hsm: no token labelled %q", tokenLabel))
}

// ErrPIN is a PIN the token refused.
var ErrPIN = errors.New("hsm: the token refused the PIN")

// Close logs out and unloads the module.
func (t *Token) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ctx.Logout(t.session)
	t.ctx.CloseSession(t.session)
	err := t.ctx.Finalize()
	t.ctx.Destroy()
	return err
}

// keyTemplate is a token-resident AES key that never leaves the token.
func keyTemplate(label string) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
	}
}

// Generate makes a new non-extractable AES-256 key labelled label.
func (t *Token) Generate(label string) (rootkey.Wrapper, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, err := t.find(label); err == nil {
		return nil, fmt.Errorf("hsm: a key labelled %q exists", label)
	}
	tmpl := append(keyTemplate(label), pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32))
	h, err := t.ctx.GenerateKey(t.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, tmpl)
	if err != nil {
		return nil, fmt.Errorf("hsm: generate: %w", err)
	}
	return &wrapper{t: t, h: h}, nil
}

// Import puts an existing root key into the token as a non-extractable key
// (migrating a plaintext root key file).
func (t *Token) Import(label string, k rootkey.Key) (rootkey.Wrapper, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, err := t.find(label); err == nil {
		return nil, fmt.Errorf("hsm: a key labelled %q exists", label)
	}
	b := k.Bytes()
	defer b.Clear()
	h, err := t.ctx.CreateObject(t.session, append(keyTemplate(label), pkcs11.NewAttribute(pkcs11.CKA_VALUE, b.Expose())))
	if err != nil {
		return nil, fmt.Errorf("hsm: import: %w", err)
	}
	return &wrapper{t: t, h: h}, nil
}

// Key finds the key labelled label.
func (t *Token) Key(label string) (rootkey.Wrapper, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h, err := t.find(label)
	if err != nil {
		return nil, err
	}
	return &wrapper{t: t, h: h}, nil
}

// Destroy deletes the key labelled label from the token (retiring a root
// key version); a missing key is not an error.
func (t *Token) Destroy(label string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	h, err := t.find(label)
	if errors.Is(err, ErrNoKey) {
		return nil
	}
	if err != nil {
		return err
	}
	return t.ctx.DestroyObject(t.session, h)
}

// Attributes reports the key's CKA_SENSITIVE and CKA_EXTRACTABLE, and
// whether the token would reveal its value (it must not).
func (t *Token) Attributes(label string) (sensitive, extractable, valueReadable bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h, err := t.find(label)
	if err != nil {
		return false, false, false, err
	}
	attrs, err := t.ctx.GetAttributeValue(t.session, h, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil), pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil)})
	if err != nil {
		return false, false, false, err
	}
	_, verr := t.ctx.GetAttributeValue(t.session, h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
	return isTrue(attrs[0].Value), isTrue(attrs[1].Value), verr == nil, nil
}

func isTrue(v []byte) bool { return len(v) == 1 && v[0] != 0 }

func (t *Token) find(label string) (pkcs11.ObjectHandle, error) {
	tmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}
	if err := t.ctx.FindObjectsInit(t.session, tmpl); err != nil {
		return 0, fmt.Errorf("hsm: find: %w", err)
	}
	hs, _, err := t.ctx.FindObjects(t.session, 2)
	t.ctx.FindObjectsFinal(t.session)
	switch {
	case err != nil:
		return 0, fmt.Errorf("hsm: find: %w", err)
	case len(hs) == 0:
		return 0, ErrNoKey
	case len(hs) > 1:
		return 0, fmt.Errorf("hsm: more than one key labelled %q", label)
	}
	return hs[0], nil
}

// wrapper is one root key version on the token.
type wrapper struct {
	t *Token
	h pkcs11.ObjectHandle
}

func aad(materialID string) []byte { return append([]byte(aadLabel), materialID...) }

func (w *wrapper) WrapMaterial(material secret.Bytes, materialID string) ([]byte, error) {
	iv := make([]byte, ivSize)
	rand.Read(iv)
	params := pkcs11.NewGCMParams(iv, aad(materialID), tagBits)
	defer params.Free()
	w.t.mu.Lock()
	defer w.t.mu.Unlock()
	if err := w.t.ctx.EncryptInit(w.t.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, w.h); err != nil {
		return nil, fmt.Errorf("hsm: wrap: %w", err)
	}
	ct, err := w.t.ctx.Encrypt(w.t.session, material.Expose())
	if err != nil {
		return nil, fmt.Errorf("hsm: wrap: %w", err)
	}
	return append(iv, ct...), nil
}

func (w *wrapper) UnwrapMaterial(wrapped []byte, materialID string) (secret.Bytes, error) {
	if len(wrapped) < ivSize+tagBits/8 {
		return secret.Bytes{}, ErrUnwrap
	}
	params := pkcs11.NewGCMParams(wrapped[:ivSize], aad(materialID), tagBits)
	defer params.Free()
	w.t.mu.Lock()
	defer w.t.mu.Unlock()
	if err := w.t.ctx.DecryptInit(w.t.session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, params)}, w.h); err != nil {
		return secret.Bytes{}, ErrUnwrap
	}
	pt, err := w.t.ctx.Decrypt(w.t.session, wrapped[ivSize:])
	if err != nil {
		return secret.Bytes{}, ErrUnwrap
	}
	defer clear(pt)
	return secret.New(pt), nil
}
