package tests

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

func TestAliases(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	k1, k2 := in.createKey("one"), in.createKey("two")
	for _, name := range []string{"alias/a", "alias/b", "alias/c"} {
		if _, err := in.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(name), TargetKeyId: &k1}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := in.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/a"), TargetKeyId: &k2})
	wantCode(t, err, "AlreadyExistsException")
	if _, err := in.kms.UpdateAlias(ctx, &kms.UpdateAliasInput{AliasName: aws.String("alias/b"), TargetKeyId: &k2}); err != nil {
		t.Fatal(err)
	}
	if _, err := in.kms.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String("alias/c")}); err != nil {
		t.Fatal(err)
	}
	_, err = in.kms.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String("alias/c")})
	wantCode(t, err, "NotFoundException")
	_, err = in.kms.UpdateAlias(ctx, &kms.UpdateAliasInput{AliasName: aws.String("alias/nope"), TargetKeyId: &k2})
	wantCode(t, err, "NotFoundException")

	var all []types.AliasListEntry
	p := kms.NewListAliasesPaginator(in.kms, &kms.ListAliasesInput{Limit: aws.Int32(1)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, out.Aliases...)
	}
	if len(all) != 2 || *all[0].AliasName != "alias/a" || *all[0].TargetKeyId != k1 ||
		*all[1].AliasName != "alias/b" || *all[1].TargetKeyId != k2 ||
		*all[0].AliasArn != "arn:aws:kms:us-east-1:111122223333:alias/a" || all[0].CreationDate == nil {
		t.Fatalf("aliases: %+v", all)
	}
	byKey, _ := in.kms.ListAliases(ctx, &kms.ListAliasesInput{KeyId: &k2})
	if len(byKey.Aliases) != 1 || *byKey.Aliases[0].AliasName != "alias/b" {
		t.Fatalf("aliases of k2: %+v", byKey.Aliases)
	}
	// The alias now resolves to k2.
	enc, _ := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("alias/b"), Plaintext: []byte("x")})
	if !strings.HasSuffix(*enc.KeyId, k2) {
		t.Fatalf("alias/b encrypted under %s", *enc.KeyId)
	}
}

func TestAliasNameRules(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	k := in.createKey("k")
	for name, code := range map[string]string{
		"noprefix":                          "ValidationException",
		"alias/":                            "ValidationException",
		"alias/has space":                   "ValidationException",
		"alias/my:alias":                    "ValidationException",
		"alias/aws/reserved":                "NotAuthorizedException",
		"alias/" + strings.Repeat("x", 251): "ValidationException",
	} {
		_, err := in.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(name), TargetKeyId: &k})
		wantCode(t, err, code)
	}
	// An alias cannot target another alias (AWS: ValidationException).
	in.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/x"), TargetKeyId: &k})
	_, err := in.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/y"), TargetKeyId: aws.String("alias/x")})
	wantCode(t, err, "ValidationException")
}

func TestTags(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	k := in.createKey("tags")
	tags := []types.Tag{
		{TagKey: aws.String("env"), TagValue: aws.String("prod")},
		{TagKey: aws.String("team"), TagValue: aws.String("core")},
		{TagKey: aws.String("cost"), TagValue: aws.String("")},
	}
	if _, err := in.kms.TagResource(ctx, &kms.TagResourceInput{KeyId: &k, Tags: tags}); err != nil {
		t.Fatal(err)
	}
	if _, err := in.kms.TagResource(ctx, &kms.TagResourceInput{KeyId: &k, Tags: []types.Tag{{TagKey: aws.String("env"), TagValue: aws.String("dev")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := in.kms.UntagResource(ctx, &kms.UntagResourceInput{KeyId: &k, TagKeys: []string{"team", "absent"}}); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	var marker *string
	for {
		out, err := in.kms.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: &k, Limit: aws.Int32(1), Marker: marker})
		if err != nil {
			t.Fatal(err)
		}
		for _, tg := range out.Tags {
			got[*tg.TagKey] = *tg.TagValue
		}
		if !out.Truncated {
			break
		}
		marker = out.NextMarker
	}
	if len(got) != 2 || got["env"] != "dev" || got["cost"] != "" {
		t.Fatalf("tags = %v", got)
	}
	_, err := in.kms.TagResource(ctx, &kms.TagResourceInput{KeyId: &k, Tags: []types.Tag{{TagKey: aws.String("aws:owner"), TagValue: aws.String("x")}}})
	wantCode(t, err, "TagException")
	_, err = in.kms.TagResource(ctx, &kms.TagResourceInput{KeyId: &k, Tags: []types.Tag{{TagKey: aws.String(strings.Repeat("k", 129)), TagValue: aws.String("x")}}})
	wantCode(t, err, "ValidationException")
	var many []types.Tag
	for i := 0; i < 51; i++ {
		many = append(many, types.Tag{TagKey: aws.String(strings.Repeat("t", i+1)), TagValue: aws.String("v")})
	}
	_, err = in.kms.TagResource(ctx, &kms.TagResourceInput{KeyId: &k, Tags: many})
	wantCode(t, err, "LimitExceededException")
}

func TestKeyPolicies(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	k := in.createKey("pol")
	pol, err := in.kms.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: &k})
	if err != nil {
		t.Fatal(err)
	}
	if *pol.PolicyName != "default" || !strings.Contains(*pol.Policy, `"arn:aws:iam::111122223333:root"`) || !strings.Contains(*pol.Policy, `"kms:*"`) {
		t.Fatalf("default policy: %s", *pol.Policy)
	}
	names, err := in.kms.ListKeyPolicies(ctx, &kms.ListKeyPoliciesInput{KeyId: &k})
	if err != nil || len(names.PolicyNames) != 1 || names.PolicyNames[0] != "default" {
		t.Fatalf("ListKeyPolicies: %+v %v", names, err)
	}
	_, err = in.kms.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: &k, PolicyName: aws.String("other")})
	wantCode(t, err, "NotFoundException")

	custom := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}`
	out, err := in.kms.CreateKey(ctx, &kms.CreateKeyInput{Policy: &custom})
	if err != nil {
		t.Fatal(err)
	}
	pol, _ = in.kms.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: out.KeyMetadata.KeyId})
	if *pol.Policy != custom {
		t.Fatalf("custom policy not kept: %s", *pol.Policy)
	}
	_, err = in.kms.CreateKey(ctx, &kms.CreateKeyInput{Policy: aws.String("{not json")})
	wantCode(t, err, "MalformedPolicyDocumentException")
}
