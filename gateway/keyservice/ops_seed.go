package keyservice

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strconv"

	"github.com/keyledger/keyledger/crypto/keyspec"
	"github.com/keyledger/keyledger/crypto/secret"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/material"
	"github.com/keyledger/keyledger/projections/keystate"
)

// SeedInput is what a seed file declares (package seed parses the file and
// checks its form): keys with fixed ids, their settings and aliases, and
// for fixtures their key material.
type SeedInput struct {
	// Account owns the keys ("": the caller's).
	Account string
	// FileHash is the seed file's SHA-256 in hex; every change the seed
	// makes is recorded with it.
	FileHash string
	// KnownMaterial allows key material from the file for AWS_KMS keys:
	// development mode, for fixtures whose ciphertexts must decrypt on every
	// fresh server. EXTERNAL keys bring their material in any mode: holding
	// it is what EXTERNAL means.
	KnownMaterial bool
	Keys          []SeedKey
}

// SeedKey is one key of a seed. Nil pointers leave a setting as the key
// has it.
type SeedKey struct {
	Entry       string // how messages name the entry, e.g. "keys[2]"
	KeyID       string
	Description *string
	KeySpec     string // "" is SYMMETRIC_DEFAULT
	KeyUsage    string // "" is the spec's default
	Origin      string // "" is AWS_KMS
	Policy      *string
	Tags        map[string]string
	Enabled     *bool
	Rotation    *SeedRotation
	Aliases     []string
	Material    secret.Bytes // none when empty; asymmetric: PKCS#8 DER
}

// SeedRotation is a seed key's automatic rotation setting.
type SeedRotation struct {
	Enabled    bool
	PeriodDays int // 0 is 365
}

// SeedOutput and SeedResult say what seeding did with each entry.
type (
	SeedOutput struct {
		Keys []SeedResult `json:"Keys"`
	}

	SeedResult struct {
		Entry   string   `json:"Entry"`
		KeyId   string   `json:"KeyId"`
		Created bool     `json:"Created"`
		Changes []string `json:"Changes,omitempty"` // the operations recorded, in order
		Note    string   `json:"Note,omitempty"`
	}
)

// Seed brings the keys a seed file declares into being, through the
// ledger like any other change: a missing key is created with its fixed
// id, and the settings the file names (description, policy, tags, enabled,
// rotation, aliases) are set where they differ — each change an event under
// its AWS operation name, a key made by the seed marked as such with the
// file's hash. Seeding the same file again changes nothing and records one
// Seed event. A conflict that cannot be changed (another key spec, usage,
// origin, account or key material under the id, a deleted id, an alias of
// another key) refuses the whole seed before anything is written, naming
// the entry. Seeding is a service-wide operation: only the operator
// account's principals may, as their identity policies allow
// (keyledger:Seed).
func (s *Service) Seed(ctx context.Context, c Caller, in *SeedInput) (*SeedOutput, error) {
	ev := s.newEvent(c, "Seed")
	ev.Body = seedParams(in)
	if err := s.authorizeOperator(c, "keyledger:Seed"); err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	return s.seed(ctx, c, ev, in, true)
}

// SeedAtStart seeds as the service itself, before it serves (serve
// --seed): its events are service events, without an actor.
func (s *Service) SeedAtStart(ctx context.Context, in *SeedInput) (*SeedOutput, error) {
	c := Caller{Account: in.Account}
	ev := &event.Event{Time: s.clock.Now(), Operation: "Seed", Account: in.Account, Region: s.region, Body: seedParams(in)}
	return s.seed(ctx, c, ev, in, false)
}

func seedParams(in *SeedInput) *event.APICall {
	p := map[string]string{"fileHash": in.FileHash, "keys": strconv.Itoa(len(in.Keys))}
	if in.KnownMaterial {
		p["knownMaterial"] = "true"
	}
	return &event.APICall{Params: p}
}

// seedStep is one change to record.
type seedStep struct {
	op   string
	body event.Body
}

// seedPlan is what seeding does with one entry.
type seedPlan struct {
	key     SeedKey
	id      string
	create  *event.KeyCreated
	mat     secret.Bytes // the material the key is created or imported with
	matID   string       // its id when it comes from the file
	imports *event.KeyMaterialImported
	steps   []seedStep
	note    string
}

func (s *Service) seed(ctx context.Context, c Caller, ev *event.Event, in *SeedInput, withActor bool) (*SeedOutput, error) {
	acct := in.Account
	if acct == "" {
		acct = c.Account
	}
	ev.Account = acct
	as := Caller{AccessKeyID: c.AccessKeyID, PrincipalARN: c.PrincipalARN, Account: acct, Identity: c.Identity,
		SourceIP: c.SourceIP, UserAgent: c.UserAgent, RequestID: c.RequestID}
	// Material KMS makes for keys that do not exist yet is generated and
	// stored before the lock (RSA takes seconds), as CreateKey does; what
	// the plan does not use is destroyed.
	fresh := map[int]freshMaterial{}
	defer func() {
		for _, f := range fresh {
			if !f.used {
				f.mat.Clear()
				_ = s.materials.Destroy(ctx, f.ref.ID)
			}
		}
	}()
	for i, k := range in.Keys {
		if _, exists := s.state.Key(k.KeyID); exists || k.Material.Len() > 0 || (k.Origin != "" && k.Origin != "AWS_KMS") {
			continue
		}
		spec := keyspec.Spec(k.KeySpec)
		if spec == "" {
			spec = keyspec.SymmetricDefault
		}
		if !spec.Known() || spec == keyspec.SM2 {
			continue // the plan refuses it
		}
		mat, pub, err := newMaterial(spec)
		if err != nil {
			return nil, s.refuse(ctx, ev, err)
		}
		ref, err := s.storeMaterial(ctx, mat)
		if err != nil {
			mat.Clear()
			return nil, s.refuse(ctx, ev, err)
		}
		fresh[i] = freshMaterial{mat: mat, pub: pub, ref: ref}
	}

	// Planning and recording are one change (change.go): a seed that loses
	// a race to another instance plans again from the new state, and what
	// it recorded before the loss is then found done.
	// What every attempt recorded, by key id: a later attempt finds it
	// done, and the answer reports it all the same.
	recorded := map[string][]string{}
	attempts := maxChangeAttempts + 4*len(in.Keys) // a few events per entry
	return changingAtMost(ctx, s, attempts, func(ctx context.Context) (*SeedOutput, error) {
		return s.applySeed(ctx, c, as, ev, in, fresh, recorded, withActor)
	})
}

// applySeed plans every entry against the key state and records the plan.
func (s *Service) applySeed(ctx context.Context, c Caller, as Caller, ev *event.Event, in *SeedInput, fresh map[int]freshMaterial, recorded map[string][]string, withActor bool) (*SeedOutput, error) {
	acct := as.Account
	plans := make([]seedPlan, len(in.Keys))
	ids, aliases := map[string]string{}, map[string]string{}
	for i, k := range in.Keys {
		if prev, dup := ids[k.KeyID]; dup {
			ev.KeyID = k.KeyID
			return nil, s.refuse(ctx, ev, errorf(CodeValidation, "Seed %s: key id %s is also the id of %s.", k.Entry, k.KeyID, prev))
		}
		ids[k.KeyID] = k.Entry
		for _, a := range k.Aliases {
			if prev, dup := aliases[a]; dup {
				return nil, s.refuse(ctx, ev, errorf(CodeValidation, "Seed %s: alias %s is also an alias of %s.", k.Entry, a, prev))
			}
			aliases[a] = k.Entry
		}
		p, err := s.planSeedKey(as, in, k, fresh[i])
		if err != nil {
			ev.KeyID = k.KeyID
			var e *Error
			if errors.As(err, &e) {
				err = &Error{Code: e.Code, Message: "Seed " + k.Entry + " (key " + k.KeyID + "): " + e.Message, Reason: e.Reason}
			}
			return nil, s.refuse(ctx, ev, err)
		}
		plans[i] = p
	}

	out := &SeedOutput{Keys: []SeedResult{}}
	var created, changed int
	for i, p := range plans {
		res := SeedResult{Entry: p.key.Entry, KeyId: p.id, Note: p.note}
		dependOn(ctx, keyPartition(p.id))
		for _, a := range p.key.Aliases {
			touch(ctx, aliasPartition(acct, a))
		}
		record := func(op string, body event.Body) error {
			e := &event.Event{Time: s.clock.Now(), Operation: op, Account: acct, Region: s.region, KeyID: p.id, Body: body}
			if withActor {
				e = s.newEvent(c, op)
				e.Account, e.KeyID, e.Body = acct, p.id, body
			}
			if err := s.record(ctx, e); err != nil {
				return err
			}
			recorded[p.id] = append(recorded[p.id], op)
			return nil
		}
		if p.create != nil {
			if p.matID != "" && p.imports == nil { // known material of an AWS_KMS key
				ref, err := s.storeSeedMaterial(ctx, p.matID, p.mat)
				if err != nil {
					return nil, s.refuse(ctx, ev, err)
				}
				p.create.Material = ref
			}
			if err := record("CreateKey", p.create); err != nil {
				return nil, err
			}
			if f, ok := fresh[i]; ok && p.matID == "" {
				f.used = true // the cache owns it now
				fresh[i] = f
				s.remember(p.create.Material.ID, f.mat)
			} else if p.matID != "" && p.imports == nil {
				s.remember(p.matID, secret.New(append([]byte(nil), p.mat.Expose()...)))
			}
		}
		if p.imports != nil {
			ref, err := s.storeSeedMaterial(ctx, p.matID, p.mat)
			if err != nil {
				return nil, s.refuse(ctx, ev, err)
			}
			p.imports.Material = ref
			if err := record("ImportKeyMaterial", p.imports); err != nil {
				return nil, err
			}
			s.remember(ref.ID, secret.New(append([]byte(nil), p.mat.Expose()...)))
		}
		for _, st := range p.steps {
			if err := record(st.op, st.body); err != nil {
				return nil, err
			}
		}
		res.Changes = recorded[p.id]
		res.Created = slices.Contains(res.Changes, "CreateKey")
		switch {
		case res.Created:
			created++
		case len(res.Changes) > 0:
			changed++
		}
		out.Keys = append(out.Keys, res)
	}
	params := ev.Body.(*event.APICall).Params
	params["created"], params["changed"] = strconv.Itoa(created), strconv.Itoa(changed)
	params["unchanged"] = strconv.Itoa(len(plans) - created - changed)
	dependOn(ctx, servicePartition) // the summary names no key: it fences none
	if err := s.record(ctx, ev); err != nil {
		return nil, err
	}
	return out, nil
}

// storeSeedMaterial stores a seed's material under its derived id. A copy
// already stored under that id — by a seed whose event failed, or may yet
// have committed — is kept and reused when it holds the same material, so
// whatever the ledger commits to stays what the store holds.
func (s *Service) storeSeedMaterial(ctx context.Context, id string, mat secret.Bytes) (event.MaterialRef, error) {
	if wrapped, err := s.materials.Get(ctx, id); err == nil {
		if sec, err := s.root.UnwrapMaterial(wrapped, id); err == nil {
			same := sec.Equal(mat)
			sec.Clear()
			if same {
				return event.MaterialRef{ID: id, WrappedHash: material.Commitment(wrapped)}, nil
			}
		}
	}
	return s.storeMaterialAs(ctx, id, mat)
}

type freshMaterial struct {
	mat  secret.Bytes
	pub  string
	ref  event.MaterialRef
	used bool
}

// planSeedKey checks one entry against the key state and plans its
// changes; nothing is written.
func (s *Service) planSeedKey(c Caller, in *SeedInput, k SeedKey, fresh freshMaterial) (seedPlan, error) {
	p := seedPlan{key: k, id: k.KeyID}
	if !looksLikeKeyID(k.KeyID) {
		return p, errorf(CodeValidation, "The key id must be a UUID in lower case (e.g. 0a1b2c3d-…).")
	}
	if s.principals != nil && !s.principals.HasAccount(c.Account) {
		return p, errorf(CodeValidation, "Account %s has no principals: nobody could use its keys.", c.Account)
	}
	var tags []Tag
	for key, v := range k.Tags {
		tags = append(tags, Tag{TagKey: &key, TagValue: &v})
	}
	want, err := s.validateCreateKey(c, &CreateKeyInput{Description: k.Description, KeySpec: k.KeySpec, KeyUsage: k.KeyUsage,
		Origin: k.Origin, Policy: k.Policy, Tags: tags, BypassPolicyLockoutSafetyCheck: true})
	if err != nil {
		return p, err
	}
	spec := keyspec.Spec(want.KeySpec)
	ref := &event.SeedRef{FileHash: in.FileHash, Entry: k.Entry}
	if k.Material.Len() > 0 {
		if want.Origin == "AWS_KMS" && !in.KnownMaterial {
			return p, errorf(CodeValidation, "Key material in a seed file for an AWS_KMS key is known to whoever holds the file: "+
				"it is for development only (serve --seed-dev, keyledger seed --dev). Give the key Origin EXTERNAL, or leave the material out.")
		}
		if want.PublicKey, err = checkImported(spec, k.Material); err != nil {
			return p, err
		}
		p.mat, p.matID = k.Material, importedMaterialID(k.KeyID, k.Material)
	}

	cur, exists := s.state.Key(k.KeyID)
	switch {
	case !exists && s.state.WasDeleted(k.KeyID):
		return p, errorf(CodeInvalidState, "This key was deleted; a deleted key's id is not used again. Give the entry a new keyId, or seed an empty data directory.")
	case !exists:
		want.Seed = ref
		p.create = want
		cur = keystate.Key{ID: k.KeyID, Account: c.Account, Description: want.Description, Spec: spec,
			Usage: keyspec.Usage(want.KeyUsage), Origin: want.Origin, State: keystate.Enabled, Policy: want.Policy, Tags: want.Tags}
		switch {
		case want.Origin == "EXTERNAL" && p.matID != "":
			ref := *ref
			p.imports = &event.KeyMaterialImported{ExpirationModel: "KEY_MATERIAL_DOES_NOT_EXPIRE", PublicKey: want.PublicKey, Seed: &ref}
		case want.Origin == "EXTERNAL":
			cur.State = keystate.PendingImport
		case p.matID != "":
			ref.KnownMaterial = true
		default:
			if fresh.ref.ID == "" { // the key existed a moment ago, before the lock
				return p, errInternal
			}
			want.Material, want.PublicKey = fresh.ref, fresh.pub
		}
	default:
		if err := s.checkSeededKey(c, k, want, cur, &p); err != nil {
			return p, err
		}
		if cur.State == keystate.PendingDeletion {
			p.note = "pending deletion: left as it is"
			p.imports = nil
			return p, nil
		}
		if p.imports != nil {
			p.imports.Seed = ref
			cur.State = keystate.Enabled
		}
	}
	p.steps, err = s.seedSteps(c, k, cur)
	return p, err
}

// checkSeededKey checks an existing key against its entry: what cannot
// change must match. It plans the import of an EXTERNAL key's material
// when the key has none.
func (s *Service) checkSeededKey(c Caller, k SeedKey, want *event.KeyCreated, cur keystate.Key, p *seedPlan) error {
	differs := func(what, has, wants string) error {
		return errorf(CodeValidation, "The key exists with %s %s; the seed says %s. A key's %s cannot change: give the entry another keyId.",
			what, has, wants, what)
	}
	switch {
	case cur.Account != c.Account:
		return errorf(CodeValidation, "The key id belongs to a key of another account.")
	case string(cur.Spec) != want.KeySpec:
		return differs("KeySpec", string(cur.Spec), want.KeySpec)
	case string(cur.Usage) != want.KeyUsage:
		return differs("KeyUsage", string(cur.Usage), want.KeyUsage)
	case cur.Origin != want.Origin:
		return differs("Origin", cur.Origin, want.Origin)
	}
	if p.matID == "" {
		return nil
	}
	if _, ok := cur.Material(p.matID); ok {
		return nil
	}
	if want.Origin == "EXTERNAL" && !cur.HasMaterial() {
		p.imports = &event.KeyMaterialImported{ExpirationModel: "KEY_MATERIAL_DOES_NOT_EXPIRE", PublicKey: want.PublicKey}
		return nil
	}
	return errorf(CodeIncorrectKeyMaterial, "The key exists with other key material than the seed's: ciphertext made under the seed's material would not decrypt.")
}

// seedSteps plans the settings of an entry that differ from the key's:
// enabling first, disabling last, so the changes between apply to a
// usable key.
func (s *Service) seedSteps(c Caller, k SeedKey, cur keystate.Key) ([]seedStep, error) {
	var steps []seedStep
	if k.Enabled != nil && cur.State == keystate.PendingImport {
		return nil, errorf(CodeInvalidState, "The key has no key material yet (Origin EXTERNAL): it cannot be enabled or disabled; give it material.")
	}
	if k.Enabled != nil && *k.Enabled && cur.State == keystate.Disabled {
		steps = append(steps, seedStep{"EnableKey", &event.KeyEnabled{}})
	}
	if k.Description != nil && *k.Description != cur.Description {
		steps = append(steps, seedStep{"UpdateKeyDescription", &event.KeyDescriptionUpdated{Description: *k.Description}})
	}
	if k.Policy != nil && !samePolicy(*k.Policy, cur.Policy) {
		steps = append(steps, seedStep{"PutKeyPolicy", &event.KeyPolicyPut{Policy: *k.Policy, BypassPolicyLockoutSafetyCheck: true}})
	}
	retag := map[string]string{}
	for key, v := range k.Tags {
		if has, ok := cur.Tags[key]; !ok || has != v {
			retag[key] = v
		}
	}
	if len(retag) > 0 {
		steps = append(steps, seedStep{"TagResource", &event.KeyTagged{Tags: retag}})
	}
	if r := k.Rotation; r != nil {
		days := r.PeriodDays
		if days == 0 {
			days = defaultRotationDays
		}
		switch {
		case r.Enabled && (cur.Spec != keyspec.SymmetricDefault || cur.Origin != "AWS_KMS"):
			return nil, errorf(CodeUnsupportedOperation, "Only symmetric encryption keys with AWS_KMS origin rotate automatically.")
		case r.Enabled && (days < 90 || days > 2560):
			return nil, outOfRange("rotationPeriodInDays", int64(days), 90, 2560)
		case r.Enabled && cur.RotationPeriodDays != days:
			steps = append(steps, seedStep{"EnableKeyRotation", &event.KeyRotationEnabled{RotationPeriodDays: days}})
		case !r.Enabled && cur.RotationPeriodDays > 0:
			steps = append(steps, seedStep{"DisableKeyRotation", &event.KeyRotationDisabled{}})
		}
	}
	have := len(s.state.Aliases(c.Account, cur.ID))
	for _, name := range k.Aliases {
		if err := validateAliasName(name); err != nil {
			return nil, err
		}
		a, ok := s.state.Alias(c.Account, name)
		switch {
		case ok && a.KeyID == cur.ID:
			continue
		case ok:
			return nil, errorf(CodeAlreadyExists, "Alias %s exists and points to key %s; the seed gives it to this key. Delete or rename one of them.",
				name, a.KeyID)
		}
		if have++; have > maxAliasesPerKey {
			return nil, errorf(CodeLimitExceeded, "A key can have at most %d aliases.", maxAliasesPerKey)
		}
		steps = append(steps, seedStep{"CreateAlias", &event.AliasCreated{AliasName: name}})
	}
	if k.Enabled != nil && !*k.Enabled && cur.State == keystate.Enabled {
		steps = append(steps, seedStep{"DisableKey", &event.KeyDisabled{}})
	}
	return steps, nil
}

// samePolicy compares two key policies as JSON values, so layout and key
// order do not count as a change.
func samePolicy(a, b string) bool {
	if a == b {
		return true
	}
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
