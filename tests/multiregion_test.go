package tests

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/keyledger/keyledger/ledger/event"
)

const (
	usEast = "us-east-1"
	euWest = "eu-west-1"
)

// waitReplica waits until the related key of id in region is in state.
func waitKeyState(t *testing.T, c *kms.Client, id, state string) *types.KeyMetadata {
	t.Helper()
	var md *types.KeyMetadata
	waitUntil(t, 20*time.Second, "key "+id+" "+state, func() bool {
		out, err := c.DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String(id)})
		if err == nil {
			md = out.KeyMetadata
		}
		return err == nil && string(out.KeyMetadata.KeyState) == state
	})
	return md
}

func regionsOf(cfg *types.MultiRegionConfiguration) (primary string, replicas []string) {
	for _, r := range cfg.ReplicaKeys {
		replicas = append(replicas, *r.Region)
	}
	slices.Sort(replicas)
	return *cfg.PrimaryKey.Region, replicas
}

func decryptTo(t *testing.T, c *kms.Client, blob []byte, want, what string) {
	t.Helper()
	out, err := c.Decrypt(context.Background(), &kms.DecryptInput{CiphertextBlob: blob})
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if string(out.Plaintext) != want {
		t.Fatalf("%s: plaintext %q", what, out.Plaintext)
	}
}

func recordsOf(r *regionSet, region, keyID string) []event.Record {
	var out []event.Record
	for _, rec := range r.records(region) {
		if rec.Event.KeyID == keyID {
			out = append(out, rec)
		}
	}
	return out
}

// TestMultiRegionKeyInOneProcess: two regions in one process. A primary
// made in us-east-1 is replicated to eu-west-1 with its own description,
// tags and policy; ciphertext from either decrypts in the other; rotation
// on the primary reaches the replica before the new material is used;
// rotation is the primary's only; the primary moves to eu-west-1; a replica
// is deleted after its window, and the primary's deletion waits for it.
// Each region records its own events and names the other's.
func TestMultiRegionKeyInOneProcess(t *testing.T) {
	r := startRegions(t, []string{usEast, euWest}, withMultiRegion())
	ctx := context.Background()
	us, eu := r.client("admin", usEast), r.client("admin", euWest)

	created, err := us.CreateKey(ctx, &kms.CreateKeyInput{MultiRegion: aws.Bool(true), Description: aws.String("primary")})
	if err != nil {
		t.Fatal(err)
	}
	id := *created.KeyMetadata.KeyId
	if !strings.HasPrefix(id, "mrk-") || len(id) != 36 || !aws.ToBool(created.KeyMetadata.MultiRegion) {
		t.Fatalf("multi-Region key id %s", id)
	}
	if p, reps := regionsOf(created.KeyMetadata.MultiRegionConfiguration); p != usEast || len(reps) != 0 ||
		created.KeyMetadata.MultiRegionConfiguration.MultiRegionKeyType != types.MultiRegionKeyTypePrimary {
		t.Fatalf("new primary's configuration: %s %v", p, reps)
	}
	before, err := us.Encrypt(ctx, &kms.EncryptInput{KeyId: &id, Plaintext: []byte("made before the replica")})
	if err != nil {
		t.Fatal(err)
	}

	began := time.Now()
	rep, err := us.ReplicateKey(ctx, &kms.ReplicateKeyInput{KeyId: &id, ReplicaRegion: aws.String(euWest),
		Description: aws.String("replica in eu"), Tags: []types.Tag{{TagKey: aws.String("team"), TagValue: aws.String("eu")}}})
	if err != nil {
		t.Fatal(err)
	}
	if md := rep.ReplicaKeyMetadata; *md.Arn != "arn:aws:kms:eu-west-1:"+testAccount+":key/"+id || md.KeyState != types.KeyStateCreating ||
		md.MultiRegionConfiguration.MultiRegionKeyType != types.MultiRegionKeyTypeReplica || *md.Description != "replica in eu" {
		t.Fatalf("ReplicaKeyMetadata: %+v", md)
	}
	if len(rep.ReplicaTags) != 1 || *rep.ReplicaPolicy == "" {
		t.Fatalf("ReplicaTags %v ReplicaPolicy %q", rep.ReplicaTags, aws.ToString(rep.ReplicaPolicy))
	}
	// The primary lists the replica at once.
	out, err := us.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
	if err != nil {
		t.Fatal(err)
	}
	if _, reps := regionsOf(out.KeyMetadata.MultiRegionConfiguration); !slices.Equal(reps, []string{euWest}) {
		t.Fatalf("primary's replicas %v", reps)
	}
	md := waitKeyState(t, eu, id, "Enabled")
	t.Logf("replica usable in eu-west-1 %v after ReplicateKey", time.Since(began).Round(time.Millisecond))
	if p, reps := regionsOf(md.MultiRegionConfiguration); p != usEast || !slices.Equal(reps, []string{euWest}) ||
		md.MultiRegionConfiguration.MultiRegionKeyType != types.MultiRegionKeyTypeReplica {
		t.Fatalf("replica's configuration: %s %v", p, reps)
	}
	if *md.Description != "replica in eu" || *md.Arn != "arn:aws:kms:eu-west-1:"+testAccount+":key/"+id {
		t.Fatalf("replica metadata: %+v", md)
	}
	tags, err := eu.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: &id})
	if err != nil || len(tags.Tags) != 1 || *tags.Tags[0].TagValue != "eu" {
		t.Fatalf("replica tags %v %v", tags, err)
	}
	if tags, _ := us.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: &id}); len(tags.Tags) != 0 {
		t.Fatalf("the primary got the replica's tags: %v", tags.Tags)
	}

	// Either region decrypts the other's ciphertext, older than the replica too.
	decryptTo(t, eu, before.CiphertextBlob, "made before the replica", "eu decrypts us's older ciphertext")
	fromEU, err := eu.Encrypt(ctx, &kms.EncryptInput{KeyId: &id, Plaintext: []byte("made in eu")})
	if err != nil {
		t.Fatal(err)
	}
	decryptTo(t, us, fromEU.CiphertextBlob, "made in eu", "us decrypts eu's ciphertext")

	// Aliases are per region.
	if _, err := us.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/mrk"), TargetKeyId: &id}); err != nil {
		t.Fatal(err)
	}
	_, err = eu.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/mrk")})
	wantCode(t, err, "NotFoundException")

	// Rotation is the primary's; the new material is used only once the
	// replica holds it.
	_, err = eu.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: &id})
	wantCode(t, err, "UnsupportedOperationException")
	_, err = eu.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: &id})
	wantCode(t, err, "UnsupportedOperationException")
	oldMaterial := *md.CurrentKeyMaterialId
	rotated := time.Now()
	if _, err := us.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: &id}); err != nil {
		t.Fatal(err)
	}
	if _, err := us.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: &id, RotationPeriodInDays: aws.Int32(180)}); err != nil {
		t.Fatal(err)
	}
	var newMaterial string
	waitUntil(t, 20*time.Second, "the rotated material current in both regions", func() bool {
		a, err1 := us.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		b, err2 := eu.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		if err1 != nil || err2 != nil {
			return false
		}
		newMaterial = *a.KeyMetadata.CurrentKeyMaterialId
		return newMaterial != oldMaterial && *b.KeyMetadata.CurrentKeyMaterialId == newMaterial
	})
	t.Logf("rotated material current in both regions %v after RotateKeyOnDemand", time.Since(rotated).Round(time.Millisecond))
	st, err := eu.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: &id})
	if err != nil || !st.KeyRotationEnabled || aws.ToInt32(st.RotationPeriodInDays) != 180 {
		t.Fatalf("replica's rotation status %+v %v", st, err)
	}
	after, err := us.Encrypt(ctx, &kms.EncryptInput{KeyId: &id, Plaintext: []byte("after rotation")})
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*kms.Client{usEast: us, euWest: eu} {
		decryptTo(t, c, before.CiphertextBlob, "made before the replica", name+": old ciphertext")
		decryptTo(t, c, after.CiphertextBlob, "after rotation", name+": new ciphertext")
	}
	rots, err := eu.ListKeyRotations(ctx, &kms.ListKeyRotationsInput{KeyId: &id})
	if err != nil || len(rots.Rotations) != 1 || *rots.Rotations[0].KeyMaterialId != newMaterial {
		t.Fatalf("replica's rotations %+v %v", rots, err)
	}

	// Each region's ledger names the other's events.
	var replicateEvent, createdEvent string
	for _, rec := range recordsOf(r, usEast, id) {
		if rec.Event.Operation == "ReplicateKey" {
			replicateEvent = rec.Hash.EventID()
		}
	}
	for _, rec := range recordsOf(r, euWest, id) {
		if b, ok := rec.Event.Body.(*event.ReplicaKeyCreated); ok {
			if b.SourceEventID != replicateEvent || b.SourceRegion != usEast || rec.Event.Operation != "CreateKey" {
				t.Fatalf("eu's CreateKey names %s in %s, want us's ReplicateKey %s", b.SourceEventID, b.SourceRegion, replicateEvent)
			}
			createdEvent = rec.Hash.EventID()
		}
	}
	if createdEvent == "" {
		t.Fatal("eu-west-1 recorded no replica creation")
	}
	if !slices.ContainsFunc(recordsOf(r, usEast, id), func(rec event.Record) bool {
		b, ok := rec.Event.Body.(*event.ReplicaAcknowledged)
		return ok && b.SourceEventID == createdEvent && b.Region == euWest
	}) {
		t.Fatal("us-east-1 recorded no acknowledgement naming eu's CreateKey")
	}

	// The primary moves to eu-west-1.
	if _, err := us.UpdatePrimaryRegion(ctx, &kms.UpdatePrimaryRegionInput{KeyId: &id, PrimaryRegion: aws.String(euWest)}); err != nil {
		t.Fatal(err)
	}
	// Crypto works while the role moves; management waits.
	if _, err := us.Encrypt(ctx, &kms.EncryptInput{KeyId: &id, Plaintext: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "eu-west-1 primary, us-east-1 replica", func() bool {
		a, err1 := us.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		b, err2 := eu.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		return err1 == nil && err2 == nil && a.KeyMetadata.KeyState == types.KeyStateEnabled &&
			a.KeyMetadata.MultiRegionConfiguration.MultiRegionKeyType == types.MultiRegionKeyTypeReplica &&
			b.KeyMetadata.MultiRegionConfiguration.MultiRegionKeyType == types.MultiRegionKeyTypePrimary
	})
	_, err = us.ReplicateKey(ctx, &kms.ReplicateKeyInput{KeyId: &id, ReplicaRegion: aws.String(euWest)})
	wantCode(t, err, "UnsupportedOperationException") // no longer the primary
	if _, err := eu.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: &id}); err != nil {
		t.Fatalf("the new primary rotates: %v", err)
	}
	waitUntil(t, 20*time.Second, "eu's rotation current in us", func() bool {
		a, err1 := us.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		b, err2 := eu.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		return err1 == nil && err2 == nil && *b.KeyMetadata.CurrentKeyMaterialId != newMaterial &&
			*a.KeyMetadata.CurrentKeyMaterialId == *b.KeyMetadata.CurrentKeyMaterialId
	})
	third, err := eu.Encrypt(ctx, &kms.EncryptInput{KeyId: &id, Plaintext: []byte("third material")})
	if err != nil {
		t.Fatal(err)
	}
	decryptTo(t, us, third.CiphertextBlob, "third material", "us decrypts the new primary's newest")

	// Deleting the primary waits for its replica; the replica goes after
	// its own window.
	del, err := eu.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &id, PendingWindowInDays: aws.Int32(7)})
	if err != nil {
		t.Fatal(err)
	}
	if del.KeyState != types.KeyStatePendingReplicaDeletion || del.DeletionDate != nil || aws.ToInt32(del.PendingWindowInDays) != 7 {
		t.Fatalf("primary's deletion with a replica: %+v", del)
	}
	_, err = eu.Encrypt(ctx, &kms.EncryptInput{KeyId: &id, Plaintext: []byte("x")})
	wantCode(t, err, "KMSInvalidStateException")
	if _, err := us.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &id, PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(8 * 24 * time.Hour)
	waitUntil(t, 20*time.Second, "the replica deleted", func() bool {
		_, err := us.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		return err != nil
	})
	pmd := waitKeyState(t, eu, id, "PendingDeletion")
	if pmd.DeletionDate == nil || !pmd.DeletionDate.After(r.clock.Now().Add(6*24*time.Hour)) {
		t.Fatalf("primary's window after the last replica went: %v", pmd.DeletionDate)
	}
	if _, reps := regionsOf(pmd.MultiRegionConfiguration); len(reps) != 0 {
		t.Fatalf("primary still lists replicas %v", reps)
	}
	r.clock.Advance(8 * 24 * time.Hour)
	waitUntil(t, 20*time.Second, "the primary deleted", func() bool {
		_, err := eu.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		return err != nil
	})
	_, err = eu.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: third.CiphertextBlob})
	wantCode(t, err, "NotFoundException")
}

// TestMultiRegionAsymmetricAndHMAC: the material of every key type is
// shared: a signature made in one region verifies in the other, a MAC
// made in one verifies in the other.
func TestMultiRegionAsymmetricAndHMAC(t *testing.T) {
	r := startRegions(t, []string{usEast, euWest}, withMultiRegion())
	ctx := context.Background()
	us, eu := r.client("admin", usEast), r.client("admin", euWest)
	ecc, err := us.CreateKey(ctx, &kms.CreateKeyInput{MultiRegion: aws.Bool(true), KeySpec: types.KeySpecEccNistP256,
		KeyUsage: types.KeyUsageTypeSignVerify})
	if err != nil {
		t.Fatal(err)
	}
	hmac, err := us.CreateKey(ctx, &kms.CreateKeyInput{MultiRegion: aws.Bool(true), KeySpec: types.KeySpecHmac256,
		KeyUsage: types.KeyUsageTypeGenerateVerifyMac})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []*string{ecc.KeyMetadata.KeyId, hmac.KeyMetadata.KeyId} {
		if _, err := us.ReplicateKey(ctx, &kms.ReplicateKeyInput{KeyId: k, ReplicaRegion: aws.String(euWest)}); err != nil {
			t.Fatal(err)
		}
		waitKeyState(t, eu, *k, "Enabled")
	}
	sig, err := us.Sign(ctx, &kms.SignInput{KeyId: ecc.KeyMetadata.KeyId, Message: []byte("msg"), SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := eu.Verify(ctx, &kms.VerifyInput{KeyId: ecc.KeyMetadata.KeyId, Message: []byte("msg"), Signature: sig.Signature,
		SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256}); err != nil || !v.SignatureValid {
		t.Fatalf("eu verifies us's signature: %v", err)
	}
	pa, _ := us.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: ecc.KeyMetadata.KeyId})
	pb, err := eu.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: ecc.KeyMetadata.KeyId})
	if err != nil || !bytes.Equal(pa.PublicKey, pb.PublicKey) {
		t.Fatalf("public keys differ: %v", err)
	}
	mac, err := eu.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: hmac.KeyMetadata.KeyId, Message: []byte("m"), MacAlgorithm: types.MacAlgorithmSpecHmacSha256})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := us.VerifyMac(ctx, &kms.VerifyMacInput{KeyId: hmac.KeyMetadata.KeyId, Message: []byte("m"), Mac: mac.Mac,
		MacAlgorithm: types.MacAlgorithmSpecHmacSha256}); err != nil || !v.MacValid {
		t.Fatalf("us verifies eu's MAC: %v", err)
	}
}

// TestMultiRegionRefusals: the AWS error for every refused transition,
// through the AWS SDK, and authorization per region.
func TestMultiRegionRefusals(t *testing.T) {
	r := startRegions(t, []string{usEast, euWest}, withMultiRegion())
	ctx := context.Background()
	us, eu := r.client("admin", usEast), r.client("admin", euWest)
	single := r.clientKey(t, us, false)
	mrk := r.clientKey(t, us, true)
	replicate := func(c *kms.Client, key, region string) error {
		_, err := c.ReplicateKey(ctx, &kms.ReplicateKeyInput{KeyId: aws.String(key), ReplicaRegion: aws.String(region)})
		return err
	}
	wantCode(t, replicate(us, single, euWest), "UnsupportedOperationException")
	wantCode(t, replicate(us, mrk, usEast), "AlreadyExistsException")
	wantCode(t, replicate(us, mrk, "ap-south-1"), "UnsupportedOperationException")
	wantCode(t, replicate(us, mrk, "moon"), "ValidationException")
	if err := replicate(us, mrk, euWest); err != nil {
		t.Fatal(err)
	}
	wantCode(t, replicate(us, mrk, euWest), "AlreadyExistsException")
	waitKeyState(t, eu, mrk, "Enabled")
	wantCode(t, replicate(eu, mrk, usEast), "UnsupportedOperationException") // a replica is not replicated

	update := func(c *kms.Client, key, region string) error {
		_, err := c.UpdatePrimaryRegion(ctx, &kms.UpdatePrimaryRegionInput{KeyId: aws.String(key), PrimaryRegion: aws.String(region)})
		return err
	}
	wantCode(t, update(us, single, euWest), "UnsupportedOperationException")
	wantCode(t, update(us, mrk, "ap-south-1"), "NotFoundException")
	wantCode(t, update(eu, mrk, usEast), "UnsupportedOperationException") // only the primary hands its role over

	// A disabled primary replicates nothing and keeps its role.
	other := r.clientKey(t, us, true)
	if _, err := us.DisableKey(ctx, &kms.DisableKeyInput{KeyId: &other}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, replicate(us, other, euWest), "DisabledException")

	// Authorization per region: alice may use the primary by its key
	// policy; the replica's policy (the default) gives her nothing.
	policy := `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"},
 {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*"}]}`
	if _, err := us.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: &mrk, Policy: &policy}); err != nil {
		t.Fatal(err)
	}
	alice := func(region string) error {
		_, err := r.client("alice", region).Encrypt(ctx, &kms.EncryptInput{KeyId: &mrk, Plaintext: []byte("x")})
		return err
	}
	if err := alice(usEast); err != nil {
		t.Fatalf("alice in us-east-1: %v", err)
	}
	wantCode(t, alice(euWest), "AccessDeniedException")
	got, err := eu.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: &mrk})
	if err != nil || strings.Contains(*got.Policy, "alice") {
		t.Fatalf("the replica shares the primary's policy: %v", err)
	}
}

// clientKey creates a symmetric key in c's region.
func (r *regionSet) clientKey(t *testing.T, c *kms.Client, multiRegion bool) string {
	t.Helper()
	out, err := c.CreateKey(context.Background(), &kms.CreateKeyInput{MultiRegion: aws.Bool(multiRegion)})
	if err != nil {
		t.Fatal(err)
	}
	return *out.KeyMetadata.KeyId
}

// TestMultiRegionImportedMaterial: a replica of an EXTERNAL primary has no
// material until the same material is imported into it; other material is
// refused, and ciphertext from either then decrypts in the other.
func TestMultiRegionImportedMaterial(t *testing.T) {
	r := startRegions(t, []string{usEast, euWest}, withMultiRegion())
	ctx := context.Background()
	us, eu := r.client("admin", usEast), r.client("admin", euWest)
	created, err := us.CreateKey(ctx, &kms.CreateKeyInput{MultiRegion: aws.Bool(true), Origin: types.OriginTypeExternal})
	if err != nil {
		t.Fatal(err)
	}
	id := *created.KeyMetadata.KeyId
	if _, err := us.ReplicateKey(ctx, &kms.ReplicateKeyInput{KeyId: &id, ReplicaRegion: aws.String(euWest)}); err != nil {
		t.Fatal(err)
	}
	md := waitKeyState(t, eu, id, "PendingImport")
	if md.Origin != types.OriginTypeExternal {
		t.Fatalf("replica origin %s", md.Origin)
	}
	material, other := make([]byte, 32), make([]byte, 32)
	for i := range material {
		material[i], other[i] = byte(i), byte(255-i)
	}
	importInto := func(c *kms.Client, mat []byte) error {
		p, err := c.GetParametersForImport(ctx, &kms.GetParametersForImportInput{KeyId: &id,
			WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256, WrappingKeySpec: types.WrappingKeySpecRsa2048})
		if err != nil {
			return err
		}
		_, err = c.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{KeyId: &id, ImportToken: p.ImportToken,
			EncryptedKeyMaterial: wrapForImport(t, p, types.AlgorithmSpecRsaesOaepSha256, mat),
			ExpirationModel:      types.ExpirationModelTypeKeyMaterialDoesNotExpire})
		return err
	}
	wantCode(t, importInto(eu, material), "KMSInvalidStateException") // the primary's region decides the material
	if err := importInto(us, material); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "the primary's material id reaches the replica", func() bool {
		err := importInto(eu, other)
		if err == nil {
			t.Fatal("other material imported into the replica")
		}
		return strings.Contains(err.Error(), "IncorrectKeyMaterialException")
	})
	if err := importInto(eu, material); err != nil {
		t.Fatal(err)
	}
	enc, err := us.Encrypt(ctx, &kms.EncryptInput{KeyId: &id, Plaintext: []byte("imported")})
	if err != nil {
		t.Fatal(err)
	}
	decryptTo(t, eu, enc.CiphertextBlob, "imported", "eu decrypts under the imported material")
}
