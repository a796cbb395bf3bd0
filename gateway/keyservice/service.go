package keyservice

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/keyledger/keyledger/crypto/asymmetric"
	"github.com/keyledger/keyledger/crypto/keyspec"
	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/crypto/secret"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/material"
	"github.com/keyledger/keyledger/projections/keystate"
)

// Clock tells the time. Tests move it to make deletions fall due.
type Clock interface{ Now() time.Time }

// Ledger appends events and waits for them to be committed.
type Ledger interface {
	Append(ctx context.Context, ev *event.Event) (event.Record, error)
}

// MaterialStore keeps wrapped key material.
type MaterialStore interface {
	Put(ctx context.Context, id string, wrapped []byte) error
	Get(ctx context.Context, id string) ([]byte, error)
	Destroy(ctx context.Context, id string) error
}

// Config wires a Service.
type Config struct {
	Region    string
	Clock     Clock
	Ledger    Ledger
	State     *keystate.State
	Materials MaterialStore
	RootKey   rootkey.Key
	// Principals says which principals exist, to validate key policies and
	// grants.
	Principals Directory
	Logger     *slog.Logger
}

// Directory answers whether principals exist.
type Directory interface {
	Exists(arn string) bool
	HasAccount(id string) bool
}

// Service implements the AWS KMS operations.
type Service struct {
	region     string
	clock      Clock
	ledger     Ledger
	state      *keystate.State
	materials  MaterialStore
	root       rootkey.Key
	principals Directory
	log        *slog.Logger

	mu       sync.RWMutex // see "Ordering" in the package doc
	policies policyCache

	cacheMu sync.RWMutex
	cache   map[string]secret.Bytes           // material id → unwrapped material
	parsed  map[string]*asymmetric.PrivateKey // material id → parsed private key
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{
		region: cfg.Region, clock: cfg.Clock, ledger: cfg.Ledger,
		state: cfg.State, materials: cfg.Materials, root: cfg.RootKey, principals: cfg.Principals, log: cfg.Logger,
		cache: map[string]secret.Bytes{}, parsed: map[string]*asymmetric.PrivateKey{},
	}
}

// Region is the region this service serves.
func (s *Service) Region() string { return s.region }

func (s *Service) keyArn(account, id string) string {
	return fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", s.region, account, id)
}

// arnOf is a key's ARN.
func (s *Service) arnOf(k keystate.Key) string { return s.keyArn(k.Account, k.ID) }

func (s *Service) aliasArn(account, name string) string {
	return fmt.Sprintf("arn:aws:kms:%s:%s:%s", s.region, account, name)
}

// newEvent starts the event that will record one request.
func (s *Service) newEvent(c Caller, op string) *event.Event {
	return &event.Event{
		Time: s.clock.Now(), Operation: op, Account: c.Account, Region: s.region,
		Actor: &event.Actor{AccessKeyID: c.AccessKeyID, PrincipalARN: c.PrincipalARN, SourceIP: c.SourceIP,
			UserAgent: c.UserAgent, RequestID: c.RequestID},
	}
}

// record appends ev and waits for the ledger. If the ledger cannot take the
// event the request fails with KMSInternalException.
func (s *Service) record(ctx context.Context, ev *event.Event) error {
	if ev.Body == nil {
		ev.Body = &event.APICall{}
	}
	if _, err := s.ledger.Append(ctx, ev); err != nil {
		s.log.Error("ledger append failed; request refused", "op", ev.Operation, "key", ev.KeyID, "error", err)
		return errInternal
	}
	return nil
}

// refuse records ev as refused with err and returns the AWS error.
func (s *Service) refuse(ctx context.Context, ev *event.Event, err error) error {
	e := AsError(err)
	if e == errInternal && !errors.Is(err, errInternal) {
		s.log.Error("internal error", "op", ev.Operation, "key", ev.KeyID, "error", err)
	}
	ev.Error = &event.Failure{Code: string(e.Code), Message: e.Message, Reason: e.Reason}
	if recErr := s.record(ctx, ev); recErr != nil {
		return recErr
	}
	return e
}

func (s *Service) shared() func() {
	s.mu.RLock()
	return s.mu.RUnlock
}

func (s *Service) exclusive() func() {
	s.mu.Lock()
	return s.mu.Unlock
}

// resolve finds the key a KeyId names: a key id or key ARN, and with
// allowAlias an alias name or alias ARN too. Ids and alias names are looked
// up in the caller's account; an ARN may name another account's key.
func (s *Service) resolve(c Caller, ref string, allowAlias bool) (keystate.Key, error) {
	if ref == "" {
		return keystate.Key{}, missing("keyId")
	}
	if len(ref) > 2048 {
		return keystate.Key{}, tooLong("keyId", 2048)
	}
	account, id := c.Account, ref
	if strings.HasPrefix(ref, "arn:") {
		parts := splitARN(ref)
		if len(parts) != 6 || parts[1] != "aws" || parts[2] != "kms" || len(parts[4]) != 12 {
			return keystate.Key{}, errorf(CodeNotFound, "Invalid arn %s", ref)
		}
		if parts[3] != s.region {
			return keystate.Key{}, errorf(CodeNotFound, "Key '%s' does not exist", ref)
		}
		account, id = parts[4], parts[5]
		if strings.HasPrefix(id, "key/") {
			id = strings.TrimPrefix(id, "key/")
		} else if !strings.HasPrefix(id, "alias/") {
			return keystate.Key{}, errorf(CodeNotFound, "Invalid arn %s", ref)
		}
	}
	if strings.HasPrefix(id, "alias/") {
		if !allowAlias {
			return keystate.Key{}, errorf(CodeNotFound, "Invalid keyId %s", ref)
		}
		a, ok := s.state.Alias(account, id)
		if !ok {
			return keystate.Key{}, errorf(CodeNotFound, "Alias %s is not found.", s.aliasArn(account, id))
		}
		id = a.KeyID
	}
	k, ok := s.state.Key(id)
	if !ok || k.Account != account {
		if !looksLikeKeyID(id) {
			return keystate.Key{}, errorf(CodeNotFound, "Invalid keyId %s", ref)
		}
		return keystate.Key{}, errorf(CodeNotFound, "Key '%s' does not exist", s.keyArn(account, id))
	}
	return k, nil
}

func splitARN(arn string) []string { return strings.SplitN(arn, ":", 6) }

func looksLikeKeyID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i, c := range id {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'):
		default:
			return false
		}
	}
	return true
}

// usable checks that k may perform a cryptographic operation of usage u.
func (s *Service) usable(k keystate.Key, u keyspec.Usage) error {
	switch k.State {
	case keystate.Enabled:
	case keystate.Disabled:
		return errorf(CodeDisabled, "%s is disabled.", s.arnOf(k))
	case keystate.PendingDeletion:
		return errorf(CodeInvalidState, "%s is pending deletion.", s.arnOf(k))
	case keystate.PendingImport:
		return errorf(CodeInvalidState, "%s is pending import.", s.arnOf(k))
	default:
		return errorf(CodeInvalidState, "%s is %s.", s.arnOf(k), k.State)
	}
	if k.Usage != u {
		return errorf(CodeInvalidKeyUsage, "%s key usage is %s which is not valid for this operation.", s.arnOf(k), k.Usage)
	}
	return nil
}

// notPendingDeletion is the check management operations make.
func (s *Service) notPendingDeletion(k keystate.Key) error {
	if k.State == keystate.PendingDeletion {
		return errorf(CodeInvalidState, "%s is pending deletion.", s.arnOf(k))
	}
	return nil
}

// unwrapped returns a key material in plaintext, from the cache or from the
// material store, after checking it against the ledger's commitment.
func (s *Service) unwrapped(ctx context.Context, m keystate.Material) (secret.Bytes, error) {
	s.cacheMu.RLock()
	sec, ok := s.cache[m.ID]
	s.cacheMu.RUnlock()
	if ok {
		return sec, nil
	}
	wrapped, err := s.materials.Get(ctx, m.ID)
	if err != nil {
		return secret.Bytes{}, fmt.Errorf("material %s: %w", m.ID, err)
	}
	if material.Commitment(wrapped) != m.WrappedHash {
		return secret.Bytes{}, fmt.Errorf("material %s does not match its ledger commitment", m.ID)
	}
	sec, err = s.root.Unwrap(wrapped, m.ID)
	if err != nil {
		return secret.Bytes{}, fmt.Errorf("material %s: %w", m.ID, err)
	}
	s.cacheMu.Lock()
	s.cache[m.ID] = sec
	s.cacheMu.Unlock()
	return sec, nil
}

// privateKey returns a key material parsed as the key's private key.
func (s *Service) privateKey(ctx context.Context, k keystate.Key, m keystate.Material) (*asymmetric.PrivateKey, error) {
	s.cacheMu.RLock()
	pk, ok := s.parsed[m.ID]
	s.cacheMu.RUnlock()
	if ok {
		return pk, nil
	}
	sec, err := s.unwrapped(ctx, m)
	if err != nil {
		return nil, err
	}
	if pk, err = asymmetric.Parse(k.Spec, sec); err != nil {
		return nil, fmt.Errorf("material %s: %w", m.ID, err)
	}
	s.cacheMu.Lock()
	s.parsed[m.ID] = pk
	s.cacheMu.Unlock()
	return pk, nil
}

// forget drops materials from the caches and clears their bytes.
func (s *Service) forget(ids ...string) {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	for _, id := range ids {
		if sec, ok := s.cache[id]; ok {
			sec.Clear()
			delete(s.cache, id)
		}
		delete(s.parsed, id)
	}
}

// remember caches material that was just made or imported.
func (s *Service) remember(id string, mat secret.Bytes) {
	s.cacheMu.Lock()
	s.cache[id] = mat
	s.cacheMu.Unlock()
}

// newMaterial generates key material for spec, and for an asymmetric spec
// its public key (base64 DER). RSA generation takes up to seconds: call it
// before taking the service lock.
func newMaterial(spec keyspec.Spec) (secret.Bytes, string, error) {
	switch {
	case spec == keyspec.SymmetricDefault:
		return secret.Random(32), "", nil
	case spec.IsHMAC():
		return secret.Random(spec.HMACKeySize()), "", nil
	}
	mat, err := asymmetric.Generate(spec)
	if err != nil {
		return secret.Bytes{}, "", err
	}
	pk, err := asymmetric.Parse(spec, mat)
	if err != nil {
		mat.Clear()
		return secret.Bytes{}, "", err
	}
	return mat, base64.StdEncoding.EncodeToString(pk.PublicKeyDER()), nil
}

// storeMaterial wraps material under the root key and puts it in the
// material store, returning the commitment the ledger records.
func (s *Service) storeMaterial(ctx context.Context, mat secret.Bytes) (event.MaterialRef, error) {
	return s.storeMaterialAs(ctx, newMaterialID(), mat)
}

func (s *Service) storeMaterialAs(ctx context.Context, id string, mat secret.Bytes) (event.MaterialRef, error) {
	wrapped := s.root.Wrap(mat, id)
	if err := s.materials.Put(ctx, id, wrapped); err != nil {
		return event.MaterialRef{}, err
	}
	return event.MaterialRef{ID: id, WrappedHash: material.Commitment(wrapped)}, nil
}

func strs[T ~string](in []T) []string {
	out := make([]string, len(in))
	for i, v := range in {
		out[i] = string(v)
	}
	return out
}

// NewID returns a random (version 4) UUID: key ids, and the gateway's
// request ids.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("keyservice: crypto/rand failed: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// newMaterialID returns a random 256-bit id in hex, the form AWS uses for
// KeyMaterialId.
func newMaterialID() string { return hex.EncodeToString(randomBytes(32)) }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("keyservice: crypto/rand failed: " + err.Error())
	}
	return b
}

// metadata renders a key as AWS's KeyMetadata.
func (s *Service) metadata(k keystate.Key) *KeyMetadata {
	md := &KeyMetadata{
		AWSAccountId: k.Account, KeyId: k.ID, Arn: s.arnOf(k), CreationDate: EpochTime(k.Created),
		Enabled: k.State == keystate.Enabled, Description: k.Description, KeyUsage: string(k.Usage),
		KeyState: string(k.State), Origin: k.Origin, KeyManager: "CUSTOMER",
		KeySpec: string(k.Spec), MultiRegion: k.MultiRegion,
		EncryptionAlgorithms:   strs(k.Spec.EncryptionAlgorithms(k.Usage)),
		SigningAlgorithms:      strs(k.Spec.SigningAlgorithms(k.Usage)),
		MacAlgorithms:          strs(k.Spec.MACAlgorithms()),
		KeyAgreementAlgorithms: k.Spec.KeyAgreementAlgorithms(k.Usage),
	}
	if k.Spec != keyspec.ECCEdwards25519 && k.Spec != keyspec.MLDSA44 && k.Spec != keyspec.MLDSA65 && k.Spec != keyspec.MLDSA87 {
		md.CustomerMasterKeySpec = string(k.Spec) // the deprecated field lacks the newer specs
	}
	if k.HasMaterial() {
		m := k.CurrentMaterial()
		md.CurrentKeyMaterialId = m.ID
		if m.Imported {
			md.ExpirationModel = m.ExpirationModel
			md.ValidTo = epoch(m.ValidTo)
		}
	}
	if k.State == keystate.PendingDeletion {
		md.DeletionDate = epoch(k.DeletionDate)
		days := k.PendingWindowDays
		md.PendingDeletionWindowInDays = &days
	}
	return md
}
