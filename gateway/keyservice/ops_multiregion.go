package keyservice

import (
	"context"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"sort"

	"github.com/keyledger/keyledger/crypto/secret"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/projections/keystate"
)

// Multi-Region keys, as AWS's developer guide describes them: related keys
// in several regions with one key id (mrk-…), one key material and one
// spec, usage, origin and automatic rotation, set on the primary and
// synchronized to the replicas; everything else (description, policy,
// grants, aliases, tags, enabled state) is each key's own. This file holds
// the operations (ReplicateKey, UpdatePrimaryRegion) and the checks other
// operations make of multi-Region keys; replicator.go carries what related
// keys share between regions.

// newMRKID returns a multi-Region key id: mrk- and 32 hex digits.
func newMRKID() string { return "mrk-" + hex.EncodeToString(randomBytes(16)) }

// regionPattern is AWS's RegionType pattern.
var regionPattern = regexp.MustCompile(`^([a-z]+-){2,3}\d+$`)

func checkRegion(member, region string) error {
	if region == "" {
		return missing(member)
	}
	if len(region) > 32 || !regionPattern.MatchString(region) {
		return constraint(member, &region, `Member must satisfy regular expression pattern: ^([a-z]+-){2,3}\d+$`)
	}
	return nil
}

// regionArn is a key's ARN in another region.
func regionArn(region, account, id string) string {
	return fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", region, account, id)
}

// notPrimary refuses what only a multi-Region primary key may do.
func (s *Service) notPrimary(k keystate.Key) error {
	if !k.IsPrimary() {
		return errorf(CodeUnsupportedOperation, "%s is not a multi-region primary key.", s.arnOf(k))
	}
	return nil
}

// notUpdating refuses management operations on a key whose primary role
// is moving.
func (s *Service) notUpdating(k keystate.Key) error {
	if k.Updating {
		return errorf(CodeInvalidState, "%s is updating.", s.arnOf(k))
	}
	return nil
}

// multiRegionConfiguration is DescribeKey's MultiRegionConfiguration.
func (s *Service) multiRegionConfiguration(k keystate.Key) *MultiRegionConfiguration {
	if !k.MultiRegion {
		return nil
	}
	typ := "PRIMARY"
	if k.IsReplica() {
		typ = "REPLICA"
	}
	cfg := &MultiRegionConfiguration{MultiRegionKeyType: typ,
		PrimaryKey:  &MultiRegionKey{Arn: regionArn(k.PrimaryRegion, k.Account, k.ID), Region: k.PrimaryRegion},
		ReplicaKeys: []MultiRegionKey{}}
	for _, r := range k.Replicas {
		cfg.ReplicaKeys = append(cfg.ReplicaKeys, MultiRegionKey{Arn: regionArn(r.Region, k.Account, k.ID), Region: r.Region})
	}
	return cfg
}

// MultiRegionConfiguration and MultiRegionKey are the AWS members that
// describe related multi-Region keys.
type (
	MultiRegionConfiguration struct {
		MultiRegionKeyType string           `json:"MultiRegionKeyType"`
		PrimaryKey         *MultiRegionKey  `json:"PrimaryKey"`
		ReplicaKeys        []MultiRegionKey `json:"ReplicaKeys"`
	}

	MultiRegionKey struct {
		Arn    string `json:"Arn"`
		Region string `json:"Region"`
	}
)

// ReplicateKeyInput and ReplicateKeyOutput are the AWS ReplicateKey members.
type (
	ReplicateKeyInput struct {
		KeyId                          string  `json:"KeyId"`
		ReplicaRegion                  string  `json:"ReplicaRegion"`
		Policy                         *string `json:"Policy"`
		BypassPolicyLockoutSafetyCheck bool    `json:"BypassPolicyLockoutSafetyCheck"`
		Description                    *string `json:"Description"`
		Tags                           []Tag   `json:"Tags"`
	}

	ReplicateKeyOutput struct {
		ReplicaKeyMetadata *KeyMetadata `json:"ReplicaKeyMetadata"`
		ReplicaPolicy      string       `json:"ReplicaPolicy"`
		ReplicaTags        []Tag        `json:"ReplicaTags"`
	}
)

// ReplicateKey makes a replica of a multi-Region primary key in another
// region. The primary's region records it at once (the replica appears in
// its MultiRegionConfiguration, Creating); the replica's region creates
// it when the shared properties reach it, and confirms. Authorization is
// kms:ReplicateKey on the primary (with kms:ReplicaRegion) and kms:CreateKey
// (and kms:TagResource with Tags) in the caller's identity policies: the
// replica region's IAM, as AWS documents; identity policies are the same in
// every region keyledger serves.
func (s *Service) ReplicateKey(ctx context.Context, c Caller, in *ReplicateKeyInput) (*ReplicateKeyOutput, error) {
	var body *event.KeyReplicated
	extra := map[string]string{"kms:replicaregion": in.ReplicaRegion}
	k, err := s.changeKey(ctx, c, "ReplicateKey", in.KeyId, extra, func(k keystate.Key) (event.Body, error) {
		var err error
		body, err = s.validateReplicateKey(c, k, in)
		return body, err
	})
	if err != nil {
		return nil, err
	}
	md := s.metadata(k)
	md.Arn, md.KeyState, md.Enabled = regionArn(in.ReplicaRegion, k.Account, k.ID), "Creating", false
	md.Description, md.CurrentKeyMaterialId = body.Description, ""
	md.DeletionDate, md.PendingDeletionWindowInDays = nil, nil
	md.CreationDate = EpochTime(s.clock.Now())
	md.MultiRegionConfiguration.MultiRegionKeyType = "REPLICA"
	return &ReplicateKeyOutput{ReplicaKeyMetadata: md, ReplicaPolicy: body.Policy, ReplicaTags: tagList(body.Tags)}, nil
}

func (s *Service) validateReplicateKey(c Caller, k keystate.Key, in *ReplicateKeyInput) (*event.KeyReplicated, error) {
	// AWS: "Cross-account use: No." The replica is the key owner's; a
	// caller of another account would choose its policy.
	if c.Account != k.Account {
		return nil, accessDenied(c, "kms:ReplicateKey", s.arnOf(k), "because ReplicateKey cannot be used across accounts",
			"caller of another account")
	}
	if err := checkRegion("replicaRegion", in.ReplicaRegion); err != nil {
		return nil, err
	}
	if err := s.notPrimary(k); err != nil {
		return nil, err
	}
	if err := s.notUpdating(k); err != nil {
		return nil, err
	}
	switch k.State {
	case keystate.Enabled, keystate.PendingImport:
	case keystate.Disabled:
		return nil, errorf(CodeDisabled, "%s is disabled.", s.arnOf(k))
	default:
		return nil, errorf(CodeInvalidState, "%s is %s.", s.arnOf(k), k.State)
	}
	if _, ok := k.Replica(in.ReplicaRegion); ok || in.ReplicaRegion == s.region {
		return nil, errorf(CodeAlreadyExists, "%s already has a related multi-Region key in %s.", s.arnOf(k), in.ReplicaRegion)
	}
	if s.replicator == nil || !s.replicator.peer(in.ReplicaRegion) {
		return nil, errorf(CodeUnsupportedOperation, "Region %s is not a region this keyledger deployment replicates to.", in.ReplicaRegion)
	}
	if err := s.authorizeIdentity(c, "kms:CreateKey", "*"); err != nil {
		return nil, err
	}
	if len(in.Tags) > 0 {
		if err := s.authorizeIdentity(c, "kms:TagResource", regionArn(in.ReplicaRegion, k.Account, k.ID)); err != nil {
			return nil, err
		}
	}
	body := &event.KeyReplicated{ReplicaRegion: in.ReplicaRegion, Policy: s.defaultPolicy(k.Account),
		BypassPolicyLockoutSafetyCheck: in.BypassPolicyLockoutSafetyCheck}
	if in.Description != nil {
		if len(*in.Description) > 8192 {
			return nil, tooLong("description", *in.Description, 8192)
		}
		body.Description = *in.Description
	}
	if in.Policy != nil {
		if err := s.checkKeyPolicy(c, *in.Policy, in.BypassPolicyLockoutSafetyCheck); err != nil {
			return nil, err
		}
		body.Policy = *in.Policy
	}
	tags, err := validateTags(in.Tags)
	if err != nil {
		return nil, err
	}
	body.Tags = tags
	return body, nil
}

func tagList(tags map[string]string) []Tag {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := []Tag{}
	for _, k := range keys {
		out = append(out, Tag{TagKey: &k, TagValue: new(tags[k])})
	}
	return out
}

// UpdatePrimaryRegionInput is the AWS UpdatePrimaryRegion request.
type UpdatePrimaryRegionInput struct {
	KeyId         string `json:"KeyId"`
	PrimaryRegion string `json:"PrimaryRegion"`
}

// UpdatePrimaryRegion hands the primary role to the replica in another
// region. This key becomes a replica at once, Updating until the new
// primary confirms; the new primary takes the role when the change
// reaches its region (cryptographic operations work throughout).
func (s *Service) UpdatePrimaryRegion(ctx context.Context, c Caller, in *UpdatePrimaryRegionInput) (*struct{}, error) {
	extra := map[string]string{"kms:primaryregion": in.PrimaryRegion}
	return s.change(ctx, c, "UpdatePrimaryRegion", in.KeyId, extra, func(k keystate.Key) (event.Body, error) {
		if err := checkRegion("primaryRegion", in.PrimaryRegion); err != nil {
			return nil, err
		}
		if err := s.notPrimary(k); err != nil {
			return nil, err
		}
		if err := s.notUpdating(k); err != nil {
			return nil, err
		}
		switch k.State {
		case keystate.Enabled:
		case keystate.Disabled:
			return nil, errorf(CodeDisabled, "%s is disabled.", s.arnOf(k))
		default:
			return nil, errorf(CodeInvalidState, "%s is %s.", s.arnOf(k), k.State)
		}
		rep, ok := k.Replica(in.PrimaryRegion)
		if !ok {
			return nil, errorf(CodeNotFound, "%s has no replica key in %s.", s.arnOf(k), in.PrimaryRegion)
		}
		if rep.Acked == 0 {
			return nil, errorf(CodeInvalidState, "%s is creating.", regionArn(rep.Region, k.Account, k.ID))
		}
		return &event.PrimaryRegionUpdated{PrimaryRegion: in.PrimaryRegion}, nil
	})
}

// checkReplicaImport is ImportKeyMaterial's check on a multi-Region
// replica of an EXTERNAL key: every related key holds the same material,
// and the primary's region decides which (AWS: import the primary's
// material into each replica). The material's id is derived from the
// material and the key id (importedMaterialID), so the same material has
// the same id in every region and the replica compares ids, not secrets.
// Departure: AWS accepts a replica's import before the primary's; here the
// primary imports first, since a replica alone cannot tell which material
// its related keys will hold.
func (s *Service) checkReplicaImport(k keystate.Key, mat secret.Bytes) error {
	if !k.IsReplica() {
		return nil
	}
	if len(k.ExpectedImports) == 0 {
		return errorf(CodeInvalidState, "%s is a multi-Region replica: import the key material into its primary key in %s first.",
			s.arnOf(k), k.PrimaryRegion)
	}
	if !slices.Contains(k.ExpectedImports, importedMaterialID(k.ID, mat)) {
		return errorf(CodeIncorrectKeyMaterial, "The key material is not the key material of the related multi-Region keys of %s.", s.arnOf(k))
	}
	return nil
}

// replicaRegions are the regions of k's replicas, sorted.
func replicaRegions(k keystate.Key) []string {
	out := make([]string, 0, len(k.Replicas))
	for _, r := range k.Replicas {
		out = append(out, r.Region)
	}
	slices.Sort(out)
	return out
}
