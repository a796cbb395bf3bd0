package keyservice_test

import (
	"context"
	"strings"
	"testing"

	ks "github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/projections/policy"
)

// TestMultiRegionCreateKey: a multi-Region key's id is mrk- and 32 hex
// digits, DescribeKey says PRIMARY, and an identity policy can refuse
// multi-Region keys by kms:MultiRegion; a lone service (no other region)
// replicates nowhere.
func TestMultiRegionCreateKey(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	out, err := f.svc.CreateKey(ctx, alice, &ks.CreateKeyInput{MultiRegion: true})
	if err != nil {
		t.Fatal(err)
	}
	md := out.KeyMetadata
	if !strings.HasPrefix(md.KeyId, "mrk-") || len(md.KeyId) != 36 || !md.MultiRegion ||
		md.MultiRegionConfiguration == nil || md.MultiRegionConfiguration.MultiRegionKeyType != "PRIMARY" ||
		md.MultiRegionConfiguration.PrimaryKey.Region != region || len(md.MultiRegionConfiguration.ReplicaKeys) != 0 {
		t.Fatalf("metadata %+v", md)
	}
	if _, err := f.svc.DescribeKey(ctx, alice, &ks.KeyIDInput{KeyId: md.KeyId}); err != nil {
		t.Fatalf("DescribeKey by mrk id: %v", err)
	}
	_, err = f.svc.ReplicateKey(ctx, alice, &ks.ReplicateKeyInput{KeyId: md.KeyId, ReplicaRegion: "eu-west-1"})
	if codeOf(err) != ks.CodeUnsupportedOperation {
		t.Fatalf("ReplicateKey with no other region: %v", err)
	}

	noMRK := alice
	noMRK.Identity = append([]*policy.Document{}, alice.Identity...)
	noMRK.Identity = append(noMRK.Identity, mustParse(`{"Version":"2012-10-17","Statement":[{"Effect":"Deny",
		"Action":"kms:CreateKey","Resource":"*","Condition":{"Bool":{"kms:MultiRegion":"true"}}}]}`))
	if _, err := f.svc.CreateKey(ctx, noMRK, &ks.CreateKeyInput{MultiRegion: true}); codeOf(err) != ks.CodeAccessDenied {
		t.Fatalf("a multi-Region key against kms:MultiRegion: %v", err)
	}
	if _, err := f.svc.CreateKey(ctx, noMRK, &ks.CreateKeyInput{}); err != nil {
		t.Fatalf("a single-region key: %v", err)
	}
}
