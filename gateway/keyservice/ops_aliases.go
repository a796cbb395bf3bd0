package keyservice

import (
	"context"
	"strings"

	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/projections/keystate"
)

const maxAliasesPerKey = 50

// aliasPattern is AliasNameType's pattern in the AWS API model.
const aliasPattern = "^[a-zA-Z0-9:/_-]+$"

// validateAliasName applies AWS's alias name rules in AWS's order: the API
// model's constraints (length, pattern) first, then the service's own (the
// alias/ prefix, the reserved alias/aws/ prefix, and no colon — the model's
// pattern allows one, AWS KMS refuses it).
func validateAliasName(name string) error {
	switch {
	case name == "":
		return missing("aliasName")
	case len(name) > 256:
		return tooLong("aliasName", name, 256)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(":/_-", c)) {
			return badPattern("aliasName", name, aliasPattern)
		}
	}
	// The texts and codes are AWS's where a real answer is on record; see
	// TestAliasAndStateAnswersFollowAWS for the evidence.
	switch {
	case !strings.HasPrefix(name, "alias/"):
		return errorf(CodeValidation, "Alias must start with the prefix \"alias/\". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html")
	case len(name) == len("alias/"):
		return errorf(CodeValidation, "Alias must start with the prefix \"alias/\" and have a name after it.")
	case strings.HasPrefix(name, "alias/aws/"):
		return errorf(CodeNotAuthorized, "Alias names beginning with alias/aws/ are reserved for AWS managed keys.")
	case strings.Contains(name, ":"):
		return errorf(CodeValidation, "%s contains invalid characters for an alias", name)
	}
	return nil
}

// checkAliasTarget refuses an alias name or alias ARN as an alias's target,
// as AWS does, before looking anything up.
func checkAliasTarget(ref string) error {
	switch {
	case ref == "":
		return missing("targetKeyId")
	case len(ref) > 2048:
		return tooLong("targetKeyId", ref, 2048)
	}
	if _, isAlias := aliasIn(ref); isAlias {
		return errorf(CodeValidation, "Aliases must refer to keys. Not aliases")
	}
	return nil
}

// AliasInput is the AWS CreateAlias and UpdateAlias request.
type AliasInput struct {
	AliasName   string `json:"AliasName"`
	TargetKeyId string `json:"TargetKeyId"`
}

// CreateAlias gives a key a new alias. It reads the alias and the target
// key: the change is fenced on both.
func (s *Service) CreateAlias(ctx context.Context, c Caller, in *AliasInput) (*struct{}, error) {
	return changing(ctx, s, func(ctx context.Context) (*struct{}, error) { return s.createAlias(ctx, c, in) })
}

func (s *Service) createAlias(ctx context.Context, c Caller, in *AliasInput) (*struct{}, error) {
	touch(ctx, aliasPartition(c.Account, in.AliasName))
	s.touchRef(ctx, c, in.TargetKeyId)
	ev := s.newEvent(c, "CreateAlias")
	ev.Body = &event.APICall{Params: map[string]string{"aliasName": in.AliasName}}
	if err := validateAliasName(in.AliasName); err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	if err := checkAliasTarget(in.TargetKeyId); err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	if err := s.authorizeIdentity(c, "kms:CreateAlias", s.aliasArn(c.Account, in.AliasName)); err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	k, err := s.use(c, in.TargetKeyId, false, request{action: "kms:CreateAlias"})
	ev.KeyID = k.ID
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	if a, exists := s.state.Alias(c.Account, in.AliasName); exists {
		touch(ctx, keyPartition(a.KeyID)) // the answer depends on that key (its deletion removes the alias)
		return nil, s.refuse(ctx, ev, errorf(CodeAlreadyExists, "An alias with the name %s already exists", s.aliasArn(c.Account, in.AliasName)))
	}
	if err := s.notPendingDeletion(k); err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	if len(s.state.Aliases(c.Account, k.ID)) >= maxAliasesPerKey {
		return nil, s.refuse(ctx, ev, errorf(CodeLimitExceeded, "A key can have at most %d aliases.", maxAliasesPerKey))
	}
	ev.Body = &event.AliasCreated{AliasName: in.AliasName}
	if err := s.record(ctx, ev); err != nil {
		return nil, err
	}
	return &struct{}{}, nil
}

// UpdateAlias points an existing alias at another key of the same type:
// an alias moved between keys, fenced on the alias, its old key and its
// new key.
func (s *Service) UpdateAlias(ctx context.Context, c Caller, in *AliasInput) (*struct{}, error) {
	return changing(ctx, s, func(ctx context.Context) (*struct{}, error) { return s.updateAlias(ctx, c, in) })
}

func (s *Service) updateAlias(ctx context.Context, c Caller, in *AliasInput) (*struct{}, error) {
	touch(ctx, aliasPartition(c.Account, in.AliasName))
	ev := s.newEvent(c, "UpdateAlias")
	ev.Body = &event.APICall{Params: map[string]string{"aliasName": in.AliasName}}
	if err := validateAliasName(in.AliasName); err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	if err := checkAliasTarget(in.TargetKeyId); err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	if err := s.authorizeIdentity(c, "kms:UpdateAlias", s.aliasArn(c.Account, in.AliasName)); err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	a, ok := s.state.Alias(c.Account, in.AliasName)
	if !ok {
		return nil, s.refuse(ctx, ev, errorf(CodeNotFound, "Alias %s is not found.", s.aliasArn(c.Account, in.AliasName)))
	}
	touch(ctx, keyPartition(a.KeyID))
	s.touchRef(ctx, c, in.TargetKeyId)
	k, err := s.use(c, in.TargetKeyId, false, request{action: "kms:UpdateAlias"})
	ev.KeyID = k.ID
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	if err := s.notPendingDeletion(k); err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	if old, ok := s.state.Key(a.KeyID); ok && (old.Spec != k.Spec || old.Usage != k.Usage) {
		return nil, s.refuse(ctx, ev, errorf(CodeValidation,
			"The new target key %s must have the same key spec and key usage as the current target key.", s.arnOf(k)))
	}
	ev.Body = &event.AliasUpdated{AliasName: in.AliasName, PreviousKeyID: a.KeyID}
	if err := s.record(ctx, ev); err != nil {
		return nil, err
	}
	return &struct{}{}, nil
}

// DeleteAliasInput is the AWS DeleteAlias request.
type DeleteAliasInput struct {
	AliasName string `json:"AliasName"`
}

// DeleteAlias removes an alias; the key is unaffected. Fenced on the alias
// and its key.
func (s *Service) DeleteAlias(ctx context.Context, c Caller, in *DeleteAliasInput) (*struct{}, error) {
	return changing(ctx, s, func(ctx context.Context) (*struct{}, error) { return s.deleteAlias(ctx, c, in) })
}

func (s *Service) deleteAlias(ctx context.Context, c Caller, in *DeleteAliasInput) (*struct{}, error) {
	touch(ctx, aliasPartition(c.Account, in.AliasName))
	ev := s.newEvent(c, "DeleteAlias")
	ev.Body = &event.APICall{Params: map[string]string{"aliasName": in.AliasName}}
	if err := validateAliasName(in.AliasName); err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	if err := s.authorizeIdentity(c, "kms:DeleteAlias", s.aliasArn(c.Account, in.AliasName)); err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	a, ok := s.state.Alias(c.Account, in.AliasName)
	if !ok {
		return nil, s.refuse(ctx, ev, errorf(CodeNotFound, "Alias %s is not found.", s.aliasArn(c.Account, in.AliasName)))
	}
	ev.KeyID = a.KeyID
	touch(ctx, keyPartition(a.KeyID))
	if k, ok := s.state.Key(a.KeyID); ok {
		if err := s.authorize(c, request{action: "kms:DeleteAlias", key: &k}); err != nil {
			return nil, s.refuse(ctx, ev, err)
		}
	}
	ev.Body = &event.AliasDeleted{AliasName: in.AliasName}
	if err := s.record(ctx, ev); err != nil {
		return nil, err
	}
	return &struct{}{}, nil
}

// ListAliasesInput, AliasListEntry and ListAliasesOutput are the AWS ListAliases members.
type (
	ListAliasesInput struct {
		KeyId  string `json:"KeyId"`
		Limit  *int32 `json:"Limit"`
		Marker string `json:"Marker"`
	}

	AliasListEntry struct {
		AliasName       string     `json:"AliasName"`
		AliasArn        string     `json:"AliasArn"`
		TargetKeyId     string     `json:"TargetKeyId"`
		CreationDate    *EpochTime `json:"CreationDate"`
		LastUpdatedDate *EpochTime `json:"LastUpdatedDate"`
	}

	ListAliasesOutput struct {
		Aliases    []AliasListEntry `json:"Aliases"`
		NextMarker string           `json:"NextMarker,omitempty"`
		Truncated  bool             `json:"Truncated"`
	}
)

// ListAliases lists the account's aliases, or one key's.
func (s *Service) ListAliases(ctx context.Context, c Caller, in *ListAliasesInput) (*ListAliasesOutput, error) {
	defer s.shared()()
	ev := s.newEvent(c, "ListAliases")
	ev.Body = &event.APICall{Params: listParams(&ListInput{Limit: in.Limit, Marker: in.Marker})}
	if err := s.authorizeIdentity(c, "kms:ListAliases", "*"); err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	keyID := ""
	if in.KeyId != "" {
		k, err := s.resolve(c, in.KeyId, false)
		if err != nil {
			return nil, s.refuse(ctx, ev, err)
		}
		keyID, ev.KeyID = k.ID, k.ID
	}
	limit, err := limitOf(in.Limit, 50, 100)
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	name := func(a keystate.Alias) string { return a.Name }
	var aliases []keystate.Alias
	var next string
	if keyID != "" { // a key has few aliases (at most maxAliasesPerKey)
		aliases, next, err = page(s.state.Aliases(c.Account, keyID), name, in.Marker, limit)
	} else {
		aliases, next, err = indexedPage(func(after string, n int) ([]keystate.Alias, bool) {
			return s.state.AliasesPage(c.Account, after, n)
		}, name, in.Marker, limit)
	}
	if err != nil {
		return nil, s.refuse(ctx, ev, err)
	}
	if err := s.record(ctx, ev); err != nil {
		return nil, err
	}
	out := &ListAliasesOutput{Aliases: []AliasListEntry{}, NextMarker: next, Truncated: next != ""}
	for _, a := range aliases {
		out.Aliases = append(out.Aliases, AliasListEntry{AliasName: a.Name, AliasArn: s.aliasArn(c.Account, a.Name),
			TargetKeyId: a.KeyID, CreationDate: epoch(a.Created), LastUpdatedDate: epoch(a.Updated)})
	}
	return out, nil
}
