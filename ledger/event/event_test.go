package event

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden vectors")

var t0 = time.Date(2026, 11, 27, 2, 47, 43, 123456789, time.UTC)

// goldenEvents covers every body type and every canonical-encoding rule.
func goldenEvents() []*Event {
	actor := &Actor{AccessKeyID: "AKIAEXAMPLE", SourceIP: "127.0.0.1", UserAgent: "aws-sdk-go-v2/1.0", RequestID: "req-1"}
	key := "1234abcd-12ab-34cd-56ef-1234567890ab"
	mat := MaterialRef{ID: "aa11", WrappedHash: "bb22"}
	bodies := []struct {
		op   string
		body Body
		err  *Failure
	}{
		{"CreateKey", &KeyCreated{Description: "quote \" backslash \\ newline \n tab \t del \x7f é 😀", KeySpec: "SYMMETRIC_DEFAULT", KeyUsage: "ENCRYPT_DECRYPT", Origin: "AWS_KMS", Policy: `{"Version":"2012-10-17"}`, Tags: map[string]string{"b": "2", "a": "1", "": "empty-key"}, Material: mat}, nil},
		{"EnableKey", &KeyEnabled{}, nil},
		{"DisableKey", &KeyDisabled{}, nil},
		{"UpdateKeyDescription", &KeyDescriptionUpdated{Description: "new"}, nil},
		{"ScheduleKeyDeletion", &KeyDeletionScheduled{DeletionDate: t0.Add(7 * 24 * time.Hour), PendingWindowDays: 7}, nil},
		{"CancelKeyDeletion", &KeyDeletionCanceled{}, nil},
		{"DeleteKey", &KeyDeleted{DestroyedMaterials: []string{"aa11", "cc33"}}, nil},
		{"CreateAlias", &AliasCreated{AliasName: "alias/app"}, nil},
		{"UpdateAlias", &AliasUpdated{AliasName: "alias/app", PreviousKeyID: "prev-key"}, nil},
		{"DeleteAlias", &AliasDeleted{AliasName: "alias/app"}, nil},
		{"TagResource", &KeyTagged{Tags: map[string]string{"env": "prod"}}, nil},
		{"UntagResource", &KeyUntagged{TagKeys: []string{"env", "team"}}, nil},
		{"Encrypt", &APICall{MaterialID: "aa11", EncryptionAlgorithm: "SYMMETRIC_DEFAULT", EncryptionContext: map[string]string{"purpose": "test"}}, nil},
		{"ReEncrypt", &APICall{MaterialID: "aa11", DestinationKeyID: "other", DestinationMaterialID: "dd44", DestinationEncryptionContext: map[string]string{"x": "y"}}, nil},
		{"GenerateDataKey", &APICall{MaterialID: "aa11", NumberOfBytes: 32, DataKeySpec: "AES_256"}, nil},
		{"Encrypt", &APICall{}, &Failure{Code: "DisabledException", Message: "key is disabled"}},
		{"ListKeys", &APICall{Params: map[string]string{"limit": "10"}}, nil},
		{"EnableKeyRotation", &KeyRotationEnabled{RotationPeriodDays: 365}, nil},
		{"DisableKeyRotation", &KeyRotationDisabled{}, nil},
		{"RotateKeyOnDemand", &KeyRotated{Material: MaterialRef{ID: "ee55", WrappedHash: "ff66"}, RotationType: "ON_DEMAND"}, nil},
		{"GetParametersForImport", &ImportParametersIssued{TokenID: "tok", WrappingAlgorithm: "RSA_AES_KEY_WRAP_SHA_256",
			WrappingKeySpec: "RSA_4096", ValidTo: t0.Add(24 * time.Hour), WrappingKey: MaterialRef{ID: "wk", WrappedHash: "wh"}}, nil},
		{"ImportKeyMaterial", &KeyMaterialImported{Material: mat, TokenID: "tok", ExpirationModel: "KEY_MATERIAL_EXPIRES",
			ValidTo: t0.Add(48 * time.Hour), Description: "hsm export", PublicKey: "MFkw"}, nil},
		{"DeleteImportedKeyMaterial", &KeyMaterialDeleted{MaterialID: "aa11"}, nil},
		{"CreateKey", &KeyCreated{KeySpec: "ECC_NIST_P256", KeyUsage: "SIGN_VERIFY", Origin: "AWS_KMS", Material: mat, PublicKey: "MFkwEwYHKoZIzj0CAQ"}, nil},
		{"PutKeyPolicy", &KeyPolicyPut{Policy: `{"Statement":[]}`, BypassPolicyLockoutSafetyCheck: true}, nil},
		{"CreateGrant", &GrantCreated{GrantID: "g1", Name: "n", GranteePrincipal: "arn:aws:iam::111122223333:role/app",
			RetiringPrincipal: "arn:aws:iam::111122223333:user/ops", Operations: []string{"Decrypt", "Encrypt"},
			EncryptionContextSubset: map[string]string{"dept": "it"}, TokenHash: "th"}, nil},
		{"RevokeGrant", &GrantRetired{GrantID: "g1"}, nil},
		{"UpdatePrincipals", &PrincipalsConfigured{Summary: `[{"arn":"x"}]`, Hash: "h"}, nil},
		{"Decrypt", &APICall{}, &Failure{Code: "AccessDeniedException", Message: "denied", Reason: "no policy allows"}},
		{"RegisterWriter", &WriterRegistered{WriterID: "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
			PublicKey: "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", RegisteredBy: "0f1e2d3c4b5a69788796a5b4c3d2e1f0"}, nil},
		{"UnsealRoot", &RootUnsealed{Mode: "shamir", CurrentVersion: 2, Submitters: []string{"arn:aws:iam::111122223333:user/a", "arn:aws:iam::111122223333:user/b"}}, nil},
		{"UnsealRoot", &RootUnsealFailed{Mode: "passphrase", Attempts: 3}, nil},
		{"SealRoot", &RootSealed{Mode: "pkcs11"}, nil},
		{"RotateRootKey", &RootRotationStarted{FromVersion: 1, ToVersion: 2, Fingerprint: "0011223344556677"}, nil},
		{"RewrapKeyMaterial", &MaterialRewrapped{Material: MaterialRef{ID: "aa11", WrappedHash: "cc33"}, PreviousHash: "bb22", RootVersion: 2}, nil},
		{"RetireRootKeyVersion", &RootVersionRetired{Version: 1, Rewrapped: 42}, nil},
		{"RemoveSegment", &SegmentRemoved{FirstIndex: 0, NextIndex: 1000, LastHash: "00ff", Through: 17,
			CheckpointSize: 1200, CheckpointRoot: "cm9vdA==", EventsSHA256: "ab12", RetentionDays: 365}, nil},
		{"TakeSchedulerLease", &SchedulerLeaseTaken{Holder: "node-a-1f2e", Token: 7,
			Supersedes: "45fb286aab4cf8b5d5501ca02706fd55f8e5c31dfffd7e3a2c518fc8ec73f6c5"}, nil},
		{"CreateKey", &KeyCreated{KeySpec: "SYMMETRIC_DEFAULT", KeyUsage: "ENCRYPT_DECRYPT", Origin: "AWS_KMS", MultiRegion: true, Material: mat}, nil},
		{"ReplicateKey", &KeyReplicated{ReplicaRegion: "eu-west-1", Description: "replica", Policy: `{"Statement":[]}`,
			Tags: map[string]string{"env": "prod"}, BypassPolicyLockoutSafetyCheck: true}, nil},
		{"CreateKey", &ReplicaKeyCreated{MultiRegionShared: MultiRegionShared{SourceRegion: "us-east-1",
			SourceEventID: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", Version: 2, PrimaryRegion: "us-east-1",
			ReplicaRegions: []string{"eu-west-1"}, RotationPeriodDays: 365, NextRotation: t0.Add(365 * 24 * time.Hour),
			Materials: []SyncedMaterial{{Material: mat, Created: t0}, {Material: MaterialRef{ID: "ee55", WrappedHash: "ff66"},
				Created: t0.Add(time.Hour), RotationType: "ON_DEMAND"}}, CurrentMaterial: "ee55"},
			KeySpec: "SYMMETRIC_DEFAULT", KeyUsage: "ENCRYPT_DECRYPT", Origin: "AWS_KMS", Description: "replica",
			Policy: `{"Statement":[]}`, Tags: map[string]string{"env": "prod"}}, nil},
		{"SynchronizeMultiRegionKey", &MultiRegionKeySynchronized{MultiRegionShared: MultiRegionShared{SourceRegion: "us-east-1",
			SourceEventID: "1f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", Version: 3, PrimaryRegion: "eu-west-1",
			ReplicaRegions: []string{"ap-south-1", "us-east-1"}, Materials: []SyncedMaterial{{Material: MaterialRef{ID: "imp"},
				Created: t0, Imported: true}}, CurrentMaterial: "ee55"}}, nil},
		{"SynchronizeMultiRegionKey", &ReplicaAcknowledged{Region: "eu-west-1", Version: 3,
			SourceEventID: "2f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", Deleted: true}, nil},
		{"UpdatePrimaryRegion", &PrimaryRegionUpdated{PrimaryRegion: "eu-west-1"}, nil},
		{"RegisterPeerRegion", &PeerRegionRegistered{Region: "eu-west-1", PublicKey: "cHVibGlj", WriterID: "0f1e2d3c4b5a69788796a5b4c3d2e1f0"}, nil},
		{"RevokeWriter", &WriterRevoked{WriterID: "1f1e2d3c4b5a69788796a5b4c3d2e1f0", RevokedBy: "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
			Reason: "host \"kms-2\" decommissioned é"}, nil},
		{"RevokeWriter", &WriterRevoked{WriterID: "2f1e2d3c4b5a69788796a5b4c3d2e1f0", RevokedBy: "0f1e2d3c4b5a69788796a5b4c3d2e1f0"}, nil},
	}
	var out []*Event
	prev := Hash{}
	for i, b := range bodies {
		e := &Event{Index: uint64(i), Prev: prev, Time: t0.Add(time.Duration(i) * time.Second), Operation: b.op,
			Account: "111122223333", Region: "us-east-1", KeyID: key, Actor: actor, Error: b.err, Body: b.body}
		if b.op == "DeleteKey" || b.op == "SynchronizeMultiRegionKey" || b.op == "RegisterPeerRegion" {
			e.Actor = nil // a service event
		}
		out = append(out, e)
		prev = Of(e.AppendEncoded(nil))
	}
	return out
}

func TestGoldenEncoding(t *testing.T) {
	var got bytes.Buffer
	for _, e := range goldenEvents() {
		got.Write(e.AppendEncoded(nil))
		got.WriteByte('\n')
	}
	path := filepath.Join("testdata", "events.golden")
	if *update {
		if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("canonical encoding changed (-want +got):\n%s", cmp.Diff(string(want), got.String()))
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "events.golden"))
	if err != nil {
		t.Fatal(err)
	}
	lines, err := SplitBatch(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := goldenEvents()
	if len(lines) != len(want) {
		t.Fatalf("%d golden lines, %d events", len(lines), len(want))
	}
	var prev Hash
	for i, line := range lines {
		e, err := Decode(line)
		if err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if !bytes.Equal(e.AppendEncoded(nil), line) {
			t.Fatalf("line %d: re-encoding differs:\n%s\n%s", i, e.AppendEncoded(nil), line)
		}
		if diff := cmp.Diff(want[i], e); diff != "" {
			t.Fatalf("line %d decoded differently (-want +got):\n%s", i, diff)
		}
		l, p, err := DecodeLink(line)
		if err != nil || l.Index != uint64(i) || p != prev {
			t.Fatalf("line %d link = %+v %v %v", i, l, p, err)
		}
		prev = Of(line)
	}
}

func TestInvalidUTF8Replaced(t *testing.T) {
	e := &Event{Operation: "Encrypt", Time: t0, Body: &APICall{Params: map[string]string{"k": "a\xffb"}}}
	d, err := Decode(e.AppendEncoded(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Body.(*APICall).Params["k"]; got != "a\ufffdb" {
		t.Fatalf("got %q", got)
	}
}

func TestUnknownTypeDecodes(t *testing.T) {
	raw := []byte(`{"v":1,"index":3,"prev":"` + Hash{}.String() + `","time":"2026-11-27T02:47:43.000000000Z","type":"FutureThing.v9","op":"X","body":{"a":1}}`)
	e, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	u, ok := e.Body.(*Unknown)
	if !ok || u.TypeName != "FutureThing.v9" || string(u.Raw) != `{"a":1}` {
		t.Fatalf("got %#v", e.Body)
	}
}

func TestSplitBatchRejectsMalformed(t *testing.T) {
	for _, in := range []string{"", "{}", "{}\n\n{}\n", "\n"} {
		if _, err := SplitBatch([]byte(in)); err == nil {
			t.Errorf("SplitBatch(%q) succeeded", in)
		}
	}
}

// chainedEvents are events of the chains several writers write: a data
// chain and a control chain, with a Fence.
func chainedEvents() []*Event {
	actor := &Actor{AccessKeyID: "AKIAEXAMPLE", RequestID: "req-2"}
	data := "w.0f1e2d3c4b5a69788796a5b4c3d2e1f0"
	e0 := &Event{Index: 0, Chain: data, Time: t0, Operation: "Encrypt", Account: "111122223333", Region: "us-east-1",
		KeyID: "k1", Actor: actor, Body: &APICall{MaterialID: "aa11"}}
	e1 := &Event{Index: 1, Prev: Of(e0.AppendEncoded(nil)), Chain: data, Time: t0.Add(time.Second), Operation: "Decrypt",
		Account: "111122223333", Region: "us-east-1", KeyID: "k1", Actor: actor, Body: &APICall{}}
	c := &Event{Index: 0, Chain: "c.17", Time: t0.Add(2 * time.Second), Operation: "UpdateAlias", Account: "111122223333",
		Region: "us-east-1", KeyID: "k2", Actor: actor, Body: &AliasUpdated{AliasName: "alias/app", PreviousKeyID: "k1"}}
	f := &Event{Index: 4, Prev: Of(e1.AppendEncoded(nil)), Chain: "c.63", Time: c.Time, Operation: "UpdateAlias",
		Account: "111122223333", Region: "us-east-1", KeyID: "k1", Actor: actor, Body: &Fence{Chain: "c.17", Change: Of(c.AppendEncoded(nil)).String()}}
	return []*Event{e0, e1, c, f}
}

func TestGoldenChainedEncoding(t *testing.T) {
	var got bytes.Buffer
	for _, e := range chainedEvents() {
		got.Write(e.AppendEncoded(nil))
		got.WriteByte('\n')
	}
	path := filepath.Join("testdata", "chained.golden")
	if *update {
		if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("canonical encoding changed (-want +got):\n%s", cmp.Diff(string(want), got.String()))
	}
	lines, err := SplitBatch(want)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range lines {
		e, err := Decode(line)
		if err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if diff := cmp.Diff(chainedEvents()[i], e); diff != "" {
			t.Fatalf("line %d decoded differently (-want +got):\n%s", i, diff)
		}
		if l, _, err := DecodeLink(line); err != nil || l.Chain != e.Chain || l.Index != e.Index {
			t.Fatalf("line %d link = %+v %v", i, l, err)
		}
	}
}

// TestSeedRefIsOptional: a seed marker is encoded and decoded when set,
// and an event without one keeps the bytes it always had.
func TestSeedRefIsOptional(t *testing.T) {
	plain := &Event{Time: time.Unix(0, 0), Operation: "CreateKey", KeyID: "k", Body: &KeyCreated{KeySpec: "SYMMETRIC_DEFAULT"}}
	if bytes.Contains(plain.AppendEncoded(nil), []byte("seed")) {
		t.Fatal("an event without a seed marker encodes one")
	}
	ref := &SeedRef{FileHash: "ab", Entry: "keys[0]", KnownMaterial: true}
	for _, body := range []Body{&KeyCreated{KeySpec: "SYMMETRIC_DEFAULT", Seed: ref}, &KeyMaterialImported{Seed: ref}} {
		e := &Event{Time: time.Unix(0, 0), Operation: "CreateKey", KeyID: "k", Body: body}
		raw := e.AppendEncoded(nil)
		if !bytes.Contains(raw, []byte(`"seed":{"fileHash":"ab","entry":"keys[0]","knownMaterial":true}`)) {
			t.Fatalf("encoded %s", raw)
		}
		d, err := Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		var got *SeedRef
		switch b := d.Body.(type) {
		case *KeyCreated:
			got = b.Seed
		case *KeyMaterialImported:
			got = b.Seed
		}
		if got == nil || *got != *ref {
			t.Fatalf("decoded %+v", got)
		}
	}
}

// BenchmarkAppendEncoded is the writer's encoding of one audited Encrypt,
// as the gateway records it.
func BenchmarkAppendEncoded(b *testing.B) {
	e := &Event{Index: 1234567, Chain: "w.0123456789abcdef0123456789abcdef", Time: t0, Operation: "Encrypt", Account: "111122223333",
		Region: "us-east-1", KeyID: "1234abcd-12ab-34cd-56ef-1234567890ab",
		Actor: &Actor{AccessKeyID: "AKIAEXAMPLE", PrincipalARN: "arn:aws:iam::111122223333:user/app", SourceIP: "127.0.0.1", UserAgent: "aws-sdk-go-v2/1.0", RequestID: "0123456789abcdef"},
		Body:  &APICall{MaterialID: "aa11", EncryptionAlgorithm: "SYMMETRIC_DEFAULT", EncryptionContext: map[string]string{"app": "billing", "tenant": "t-42"}}}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = e.AppendEncoded(buf[:0])
	}
}
