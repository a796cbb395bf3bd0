package keyservice

import (
	"context"
	"errors"
	"strconv"

	"github.com/keyledger/keyledger/crypto/keyspec"
	"github.com/keyledger/keyledger/crypto/secret"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/projections/keystate"
)

const (
	defaultRotationDays = 365
	maxOnDemandRotation = 25
)

// rotatable checks that AWS would rotate k: a symmetric encryption key with
// KMS-made material, in a usable state.
func (s *Service) rotatable(k keystate.Key, onDemand bool) error {
	if k.IsReplica() {
		return errorf(CodeUnsupportedOperation, "%s is a multi-Region replica key: its rotation is set and done on its primary key, in %s.",
			s.arnOf(k), k.PrimaryRegion)
	}
	if k.Spec != keyspec.SymmetricDefault {
		return errorf(CodeUnsupportedOperation, "%s does not support key rotation: only symmetric encryption keys rotate.", s.arnOf(k))
	}
	if k.Origin != "AWS_KMS" {
		return errorf(CodeUnsupportedOperation, "%s has imported key material; keyledger rotates only key material it made.", s.arnOf(k))
	}
	if onDemand || k.State != keystate.Disabled {
		return s.usable(k, k.Usage)
	}
	return errorf(CodeDisabled, "%s is disabled.", s.arnOf(k))
}

// EnableKeyRotationInput is the AWS EnableKeyRotation request.
type EnableKeyRotationInput struct {
	KeyId                string `json:"KeyId"`
	RotationPeriodInDays *int32 `json:"RotationPeriodInDays"`
}

// EnableKeyRotation turns on automatic rotation every 90–2560 days.
func (s *Service) EnableKeyRotation(ctx context.Context, c Caller, in *EnableKeyRotationInput) (*struct{}, error) {
	days := int64(defaultRotationDays)
	if in.RotationPeriodInDays != nil {
		days = int64(*in.RotationPeriodInDays)
	}
	extra := map[string]string{"kms:rotationperiodindays": strconv.FormatInt(days, 10)}
	return s.change(ctx, c, "EnableKeyRotation", in.KeyId, extra, func(k keystate.Key) (event.Body, error) {
		if days < 90 || days > 2560 {
			return nil, outOfRange("rotationPeriodInDays", days, 90, 2560)
		}
		if err := s.rotatable(k, false); err != nil {
			return nil, err
		}
		return &event.KeyRotationEnabled{RotationPeriodDays: int(days)}, nil
	})
}

// DisableKeyRotation turns automatic rotation off.
func (s *Service) DisableKeyRotation(ctx context.Context, c Caller, in *KeyIDInput) (*struct{}, error) {
	return s.change(ctx, c, "DisableKeyRotation", in.KeyId, nil, func(k keystate.Key) (event.Body, error) {
		if err := s.rotatable(k, false); err != nil {
			return nil, err
		}
		return &event.KeyRotationDisabled{}, nil
	})
}

// GetKeyRotationStatusOutput is the AWS GetKeyRotationStatus response.
type GetKeyRotationStatusOutput struct {
	KeyRotationEnabled   bool       `json:"KeyRotationEnabled"`
	KeyId                string     `json:"KeyId"`
	RotationPeriodInDays *int       `json:"RotationPeriodInDays,omitempty"`
	NextRotationDate     *EpochTime `json:"NextRotationDate,omitempty"`
}

// GetKeyRotationStatus reports whether and when a key rotates. Keys that
// cannot rotate answer false, as AWS now does.
func (s *Service) GetKeyRotationStatus(ctx context.Context, c Caller, in *KeyIDInput) (*GetKeyRotationStatusOutput, error) {
	defer s.shared()()
	ev := s.newEvent(c, "GetKeyRotationStatus")
	k, err := s.use(c, in.KeyId, false, request{action: "kms:GetKeyRotationStatus"})
	ev.KeyID = k.ID
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	if err := s.record(ctx, ev); err != nil {
		return nil, err
	}
	out := &GetKeyRotationStatusOutput{KeyId: s.arnOf(k), KeyRotationEnabled: k.RotationPeriodDays > 0}
	if out.KeyRotationEnabled {
		days := k.RotationPeriodDays
		out.RotationPeriodInDays, out.NextRotationDate = &days, epoch(k.NextRotation)
	}
	return out, nil
}

// RotateKeyOnDemandOutput is the AWS RotateKeyOnDemand response.
type RotateKeyOnDemandOutput struct {
	KeyId string `json:"KeyId"`
}

// RotateKeyOnDemand gives a key new current material now (25 times at most).
func (s *Service) RotateKeyOnDemand(ctx context.Context, c Caller, in *KeyIDInput) (*RotateKeyOnDemandOutput, error) {
	ev := s.newEvent(c, "RotateKeyOnDemand")
	check := func() (keystate.Key, error) {
		k, err := s.use(c, in.KeyId, false, request{action: "kms:RotateKeyOnDemand"})
		if err != nil {
			return k, err
		}
		if err := s.rotatable(k, true); err != nil {
			return k, err
		}
		if k.OnDemandRotations >= maxOnDemandRotation {
			return k, errorf(CodeLimitExceeded, "%s has been rotated on demand %d times, the most AWS allows.", s.arnOf(k), maxOnDemandRotation)
		}
		return k, nil
	}
	if k, err := check(); err != nil { // before making material for nothing
		ev.KeyID = k.ID
		return nil, s.refuse(ctx, ev, err)
	}
	mat := secret.Random(32)
	ref, err := s.storeMaterial(ctx, mat)
	if err != nil {
		mat.Clear()
		return nil, s.refuse(ctx, ev, err)
	}
	out, err := changing(ctx, s, func(ctx context.Context) (*RotateKeyOnDemandOutput, error) {
		s.touchRef(ctx, c, in.KeyId)
		ev := *ev         // each attempt records its own
		k, err := check() // again, under the lock
		ev.KeyID = k.ID
		if err != nil {
			return nil, s.refuse(ctx, &ev, err)
		}
		ev.Body = &event.KeyRotated{Material: ref, RotationType: "ON_DEMAND"}
		if err := s.record(ctx, &ev); err != nil {
			return nil, err
		}
		s.remember(ref.ID, mat)
		return &RotateKeyOnDemandOutput{KeyId: k.ID}, nil
	})
	if err != nil {
		mat.Clear()
		if AsError(err) != errInternal { // refused: never committed to, nothing refers to it
			_ = s.materials.Destroy(ctx, ref.ID)
		}
	}
	return out, err
}

// rotate is the scheduler's automatic rotation: a RotateKey service event.
func (s *Service) rotate(ctx context.Context, id string, f fence) error {
	mat := secret.Random(32)
	ref, err := s.storeMaterial(ctx, mat)
	if err != nil {
		mat.Clear()
		return err
	}
	var ok bool
	_, err = changing(ctx, s, func(ctx context.Context) (struct{}, error) {
		touch(ctx, keyPartition(id))
		now := s.clock.Now()
		due := func() bool {
			k, ok := s.state.Key(id)
			return ok && k.State == keystate.Enabled && k.RotationPeriodDays > 0 && !k.NextRotation.After(now)
		}
		k, _ := s.state.Key(id)
		ok = due() && f() == nil
		if !ok {
			return struct{}{}, nil
		}
		ev := &event.Event{Time: now, Operation: "RotateKey", Account: k.Account, Region: k.Region, KeyID: k.ID,
			Body: &event.KeyRotated{Material: ref, RotationType: "AUTOMATIC"}}
		var err error
		ok, err = s.appendDue(ctx, ev, f, due)
		return struct{}{}, err
	})
	if err != nil && !errors.Is(err, errBusy) {
		mat.Clear()
		return err
	}
	if !ok {
		mat.Clear()
		return s.materials.Destroy(ctx, ref.ID) // changed while we waited, or not ours to do
	}
	s.remember(ref.ID, mat)
	return nil
}

// ListKeyRotationsInput, RotationsListEntry and ListKeyRotationsOutput are the
// AWS ListKeyRotations members.
type (
	ListKeyRotationsInput struct {
		KeyId              string `json:"KeyId"`
		IncludeKeyMaterial string `json:"IncludeKeyMaterial"`
		Limit              *int32 `json:"Limit"`
		Marker             string `json:"Marker"`
	}

	RotationsListEntry struct {
		KeyId                  string     `json:"KeyId"`
		RotationDate           *EpochTime `json:"RotationDate,omitempty"`
		RotationType           string     `json:"RotationType,omitempty"`
		KeyMaterialId          string     `json:"KeyMaterialId"`
		KeyMaterialState       string     `json:"KeyMaterialState"`
		KeyMaterialDescription string     `json:"KeyMaterialDescription,omitempty"`
		ImportState            string     `json:"ImportState,omitempty"`
		ExpirationModel        string     `json:"ExpirationModel,omitempty"`
		ValidTo                *EpochTime `json:"ValidTo,omitempty"`
	}

	ListKeyRotationsOutput struct {
		Rotations  []RotationsListEntry `json:"Rotations"`
		NextMarker string               `json:"NextMarker,omitempty"`
		Truncated  bool                 `json:"Truncated"`
	}
)

// ListKeyRotations lists a key's rotations (or, with ALL_KEY_MATERIAL,
// every key material), oldest first.
func (s *Service) ListKeyRotations(ctx context.Context, c Caller, in *ListKeyRotationsInput) (*ListKeyRotationsOutput, error) {
	defer s.shared()()
	ev := s.newEvent(c, "ListKeyRotations")
	ev.Body = &event.APICall{Params: listParams(&ListInput{Limit: in.Limit, Marker: in.Marker})}
	k, err := s.use(c, in.KeyId, false, request{action: "kms:ListKeyRotations"})
	ev.KeyID = k.ID
	if err == nil && k.Spec != keyspec.SymmetricDefault {
		err = errorf(CodeUnsupportedOperation, "%s does not support key rotation.", s.arnOf(k))
	}
	all := false
	switch in.IncludeKeyMaterial {
	case "", "ROTATIONS_ONLY":
	case "ALL_KEY_MATERIAL":
		all = true
	default:
		if err == nil {
			err = notInEnum("includeKeyMaterial", in.IncludeKeyMaterial, "ALL_KEY_MATERIAL", "ROTATIONS_ONLY")
		}
	}
	limit := 0
	if err == nil {
		limit, err = limitOf(in.Limit, 100, 1000)
	}
	type indexed struct {
		pos string
		m   keystate.Material
	}
	var entries []indexed
	if err == nil {
		for i, m := range k.Materials {
			if all || m.RotationType != "" {
				entries = append(entries, indexed{pos: strconv.FormatInt(int64(100000+i), 10), m: m})
			}
		}
	}
	var pageOf []indexed
	next := ""
	if err == nil {
		pageOf, next, err = page(entries, func(e indexed) string { return e.pos }, in.Marker, limit)
	}
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	if err := s.record(ctx, ev); err != nil {
		return nil, err
	}
	current := ""
	if k.HasMaterial() {
		current = k.CurrentMaterial().ID
	}
	out := &ListKeyRotationsOutput{Rotations: []RotationsListEntry{}, NextMarker: next, Truncated: next != ""}
	for _, e := range pageOf {
		r := RotationsListEntry{KeyId: k.ID, KeyMaterialId: e.m.ID, RotationType: e.m.RotationType, KeyMaterialState: "NON_CURRENT"}
		if e.m.RotationType != "" {
			r.RotationDate = epoch(e.m.Created)
		}
		if e.m.ID == current {
			r.KeyMaterialState = "CURRENT"
		}
		if e.m.Imported {
			r.ImportState, r.ExpirationModel, r.ValidTo, r.KeyMaterialDescription = "IMPORTED", e.m.ExpirationModel, epoch(e.m.ValidTo), e.m.Description
		}
		out.Rotations = append(out.Rotations, r)
	}
	return out, nil
}

// GetKeyLastUsageOutput and KeyLastUsage are the AWS GetKeyLastUsage response.
type (
	GetKeyLastUsageOutput struct {
		KeyId             string        `json:"KeyId"`
		KeyLastUsage      *KeyLastUsage `json:"KeyLastUsage,omitempty"`
		TrackingStartDate *EpochTime    `json:"TrackingStartDate"`
		KeyCreationDate   *EpochTime    `json:"KeyCreationDate"`
	}

	KeyLastUsage struct {
		Operation         string     `json:"Operation"`
		Timestamp         *EpochTime `json:"Timestamp"`
		CloudTrailEventId string     `json:"CloudTrailEventId"`
		KmsRequestId      string     `json:"KmsRequestId"`
	}
)

// GetKeyLastUsage answers from the ledger: the key's last successful
// cryptographic operation. The ledger has tracked use since the key was
// created.
func (s *Service) GetKeyLastUsage(ctx context.Context, c Caller, in *KeyIDInput) (*GetKeyLastUsageOutput, error) {
	defer s.shared()()
	ev := s.newEvent(c, "GetKeyLastUsage")
	k, err := s.use(c, in.KeyId, true, request{action: "kms:GetKeyLastUsage"})
	ev.KeyID = k.ID
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	if err := s.record(ctx, ev); err != nil {
		return nil, err
	}
	out := &GetKeyLastUsageOutput{KeyId: s.arnOf(k), TrackingStartDate: epoch(k.Created), KeyCreationDate: epoch(k.Created)}
	if u, ok := s.state.LastUse(k.ID); ok {
		out.KeyLastUsage = &KeyLastUsage{Operation: u.Operation, Timestamp: epoch(u.Time), CloudTrailEventId: u.EventID, KmsRequestId: u.RequestID}
	}
	return out, nil
}
