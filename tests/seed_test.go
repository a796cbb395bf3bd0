package tests

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/gateway/seed"
	"github.com/keyledger/keyledger/ledger/event"
)

// The committed fixtures: seed files, and what a previous run made under
// their keys (regenerate with KEYLEDGER_WRITE_SEED_FIXTURES=1; the seed
// files must not change, or the old ciphertexts stop decrypting — which is
// the point of the test).
const (
	seedFixtures    = "testdata/seed/fixtures.yaml"
	seedDevFixtures = "testdata/seed/fixtures-dev.yaml"
	seedOutputs     = "testdata/seed/outputs.json"
)

var fixtureContext = map[string]string{"purpose": "fixture"}

type seedOutputFixture struct {
	Plaintext string `json:"plaintext"`
	External  string `json:"externalCiphertext"` // under alias/fixtures (EXTERNAL)
	Dev       string `json:"devCiphertext"`      // under alias/dev-fixtures (AWS_KMS, known material)
	Signature string `json:"signature"`          // alias/fixture-signer, ECDSA_SHA_256 over Plaintext
}

func readSeed(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// seedInstance seeds in as serve --seed does (seed.Parse, then
// SeedAtStart; account defaults to the test account).
func seedInstance(t *testing.T, in *instance, path string, dev bool) (*keyservice.SeedOutput, error) {
	t.Helper()
	s, err := seed.Parse(readSeed(t, path))
	if err != nil {
		t.Fatal(err)
	}
	defer seed.Clear(s)
	if s.Account == "" {
		s.Account = testAccount
	}
	s.KnownMaterial = dev
	return in.node.Service.SeedAtStart(context.Background(), s)
}

// TestSeedFixturesWorkOnEveryFreshServer seeds two fresh servers from the
// committed seed files: ciphertexts and a signature a previous run made
// still verify, a MAC matches one computed here from the file's material,
// every key has its spec, usage, settings and aliases, and the ledger
// records each seeded key as seeded — with the file's hash, never its
// material.
func TestSeedFixturesWorkOnEveryFreshServer(t *testing.T) {
	ctx := context.Background()
	if os.Getenv("KEYLEDGER_WRITE_SEED_FIXTURES") == "1" {
		writeSeedOutputs(t)
	}
	raw := readSeed(t, seedOutputs)
	var want seedOutputFixture
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	for run := 0; run < 2; run++ {
		in := start(t)
		for _, f := range []string{seedFixtures, seedDevFixtures} {
			if _, err := seedInstance(t, in, f, true); err != nil {
				t.Fatalf("seeding %s: %v", f, err)
			}
		}
		for name, ct := range map[string]string{"EXTERNAL": want.External, "AWS_KMS known material": want.Dev} {
			blob, _ := base64.StdEncoding.DecodeString(ct)
			dec, err := in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob, EncryptionContext: fixtureContext})
			if err != nil || string(dec.Plaintext) != want.Plaintext {
				t.Fatalf("run %d: the %s fixture ciphertext does not decrypt: %v", run, name, err)
			}
		}
		sig, _ := base64.StdEncoding.DecodeString(want.Signature)
		if _, err := in.kms.Verify(ctx, &kms.VerifyInput{KeyId: aws.String("alias/fixture-signer"), Message: []byte(want.Plaintext),
			Signature: sig, SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256, MessageType: types.MessageTypeRaw}); err != nil {
			t.Fatalf("run %d: the fixture signature: %v", run, err)
		}
		checkSeededKeys(t, in)
		checkSeedLedger(t, in)
	}
}

// checkSeededKeys compares the seeded keys with fixtures.yaml.
func checkSeededKeys(t *testing.T, in *instance) {
	t.Helper()
	ctx := context.Background()
	// The MAC key's material is the file's: the same MAC as computed here.
	mat, _ := base64.StdEncoding.DecodeString("xGMTa9Z6zBbsawOy3ocQB1Nj7lFBJkvNZnY6sks19gY=")
	m := hmac.New(sha256.New, mat)
	m.Write([]byte("fixture message"))
	mac, err := in.kms.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: aws.String("alias/fixture-mac"), Message: []byte("fixture message"),
		MacAlgorithm: types.MacAlgorithmSpecHmacSha256})
	if err != nil || !hmac.Equal(mac.Mac, m.Sum(nil)) {
		t.Fatalf("the seeded HMAC key's MAC differs from the file's material: %v", err)
	}
	// The signing key's public key is the file's private key's.
	der, _ := base64.StdEncoding.DecodeString("MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgkldYtgfxm5seDaRJNH7MAAJtkrVF0/W3Dw7Qw45o6tChRANCAASnG46iPSNjYJJV8HMjoBRE/GmP4n4YpI6HQdw8ZhIL83r0EWGE6QOVL/ZWFkpcaQ8HMbbEGpD9+ABl2+Q/WbjQ")
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatal(err)
	}
	wantPub, _ := x509.MarshalPKIXPublicKey(&priv.(*ecdsa.PrivateKey).PublicKey)
	pub, err := in.kms.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String("alias/fixture-signer")})
	if err != nil || !bytes.Equal(pub.PublicKey, wantPub) {
		t.Fatalf("the seeded signing key's public key: %v", err)
	}

	keys := []struct {
		id, spec, usage, origin, desc string
		enabled                       bool
	}{
		{"49ae195b-c089-47b6-a22e-85050f7576d2", "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "EXTERNAL", "fixture encryption key", true},
		{"45afd313-94c1-4765-b539-07bc29b7c7ad", "ECC_NIST_P256", "SIGN_VERIFY", "EXTERNAL", "fixture signing key (PKCS#8 DER)", true},
		{"ea756397-4e1c-423e-bc6f-1597584c81e7", "HMAC_256", "GENERATE_VERIFY_MAC", "EXTERNAL", "", true},
		{"01eedf47-3f68-4eb0-a2ac-5dc2253650b9", "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "AWS_KMS", "rotating data key", true},
		{"641e63bf-6b07-4631-805f-0ef9edbb70b8", "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "AWS_KMS", "switched off", false},
		{"3f99c252-a9d5-4b2a-8618-20171533034b", "RSA_2048", "SIGN_VERIFY", "AWS_KMS", "", true},
		{"c283a97e-e9bf-4658-a639-fe521a196f5c", "RSA_3072", "ENCRYPT_DECRYPT", "AWS_KMS", "", true},
		{"f61e9bb6-71a7-4ed8-bb7d-ce8ce0d69d1f", "ECC_NIST_P384", "KEY_AGREEMENT", "AWS_KMS", "", true},
		{"dd2578fb-ce4b-4d06-b47f-d25384bc2930", "ECC_SECG_P256K1", "SIGN_VERIFY", "AWS_KMS", "", true},
		{"68c7f5b6-a440-4179-9a61-e3002e34182c", "ECC_NIST_EDWARDS25519", "SIGN_VERIFY", "AWS_KMS", "", true},
		{"968e0ade-847c-4593-a3f5-02900b655fc2", "ML_DSA_44", "SIGN_VERIFY", "AWS_KMS", "", true},
		{"a97f77a4-b882-4191-8c13-039fbe019d72", "HMAC_512", "GENERATE_VERIFY_MAC", "AWS_KMS", "", true},
		{"7c0b8e4a-2f1d-4e6b-9a3c-5d8e7f6a1b2c", "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "AWS_KMS", "dev fixture (AWS_KMS origin, known material)", true},
	}
	for _, k := range keys {
		d, err := in.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(k.id)})
		if err != nil {
			t.Fatalf("%s: %v", k.id, err)
		}
		md := d.KeyMetadata
		if string(md.KeySpec) != k.spec || string(md.KeyUsage) != k.usage || string(md.Origin) != k.origin ||
			aws.ToString(md.Description) != k.desc || md.Enabled != k.enabled {
			t.Errorf("%s: spec %s usage %s origin %s description %q enabled %v", k.id, md.KeySpec, md.KeyUsage, md.Origin,
				aws.ToString(md.Description), md.Enabled)
		}
	}
	rot, err := in.kms.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String("01eedf47-3f68-4eb0-a2ac-5dc2253650b9")})
	if err != nil || !rot.KeyRotationEnabled || aws.ToInt32(rot.RotationPeriodInDays) != 180 {
		t.Errorf("rotation of the rotating key: %+v %v", rot, err)
	}
	tags, err := in.kms.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: aws.String("49ae195b-c089-47b6-a22e-85050f7576d2")})
	if err != nil || len(tags.Tags) != 2 {
		t.Errorf("tags: %+v %v", tags, err)
	}
	al, err := in.kms.ListAliases(ctx, &kms.ListAliasesInput{KeyId: aws.String("49ae195b-c089-47b6-a22e-85050f7576d2")})
	if err != nil || len(al.Aliases) != 2 {
		t.Errorf("aliases: %+v %v", al, err)
	}
}

// checkSeedLedger: every key the seeds made is marked seeded with its
// file's hash (known material marked as such), and no event holds any of
// the files' key material, raw or base64.
func checkSeedLedger(t *testing.T, in *instance) {
	t.Helper()
	hashOf := func(path string) string {
		h := sha256.Sum256(readSeed(t, path))
		return hex.EncodeToString(h[:])
	}
	fixtures, dev := hashOf(seedFixtures), hashOf(seedDevFixtures)
	secrets := [][]byte{}
	for _, s := range []string{"VRXcxHplnd6F0LaM2otL4LCJwU4GLb/Q8vGwGWLAvqE=", "xGMTa9Z6zBbsawOy3ocQB1Nj7lFBJkvNZnY6sks19gY=",
		"0OHQgIMevhByRvy4Jt1lg2u3/T2BaGUb9CWkirP3vRQ=", "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgkldYtgfxm5seDaRJNH7MAAJtkrVF0"} {
		raw, _ := base64.StdEncoding.DecodeString(s)
		secrets = append(secrets, []byte(s[:24]), raw[:16])
	}
	created, imported, known := 0, 0, 0
	for _, r := range in.records() {
		for _, s := range secrets {
			if bytes.Contains(r.Raw, s) {
				t.Fatalf("event %d (%s) holds seed key material", r.Event.Index, r.Event.Operation)
			}
		}
		switch b := r.Event.Body.(type) {
		case *event.KeyCreated:
			if b.Seed == nil || (b.Seed.FileHash != fixtures && b.Seed.FileHash != dev) || !strings.HasPrefix(b.Seed.Entry, "keys[") {
				t.Fatalf("CreateKey of %s not marked seeded: %+v", r.Event.KeyID, b.Seed)
			}
			if r.Event.Actor != nil || r.Event.Operation != "CreateKey" {
				t.Fatalf("a seed at start is a service event: %+v %s", r.Event.Actor, r.Event.Operation)
			}
			created++
			if b.Seed.KnownMaterial {
				known++
				if r.Event.KeyID != "7c0b8e4a-2f1d-4e6b-9a3c-5d8e7f6a1b2c" {
					t.Fatalf("%s marked known material", r.Event.KeyID)
				}
			}
		case *event.KeyMaterialImported:
			if b.Seed == nil || b.Seed.FileHash != fixtures || b.TokenID != "" {
				t.Fatalf("seeded import of %s: %+v", r.Event.KeyID, b)
			}
			imported++
		}
	}
	if created != 13 || imported != 3 || known != 1 {
		t.Fatalf("%d keys created, %d imported, %d with known material; want 13, 3, 1", created, imported, known)
	}
}

// writeSeedOutputs makes the committed ciphertexts and signature.
func writeSeedOutputs(t *testing.T) {
	ctx := context.Background()
	in := start(t)
	for _, f := range []string{seedFixtures, seedDevFixtures} {
		if _, err := seedInstance(t, in, f, true); err != nil {
			t.Fatalf("%v\n%s", err, in.logs.String())
		}
	}
	out := seedOutputFixture{Plaintext: "keyledger seed fixture"}
	for alias, dst := range map[string]*string{"alias/fixtures": &out.External, "alias/dev-fixtures": &out.Dev} {
		enc, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(alias), Plaintext: []byte(out.Plaintext), EncryptionContext: fixtureContext})
		if err != nil {
			t.Fatal(err)
		}
		*dst = base64.StdEncoding.EncodeToString(enc.CiphertextBlob)
	}
	sig, err := in.kms.Sign(ctx, &kms.SignInput{KeyId: aws.String("alias/fixture-signer"), Message: []byte(out.Plaintext),
		SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256, MessageType: types.MessageTypeRaw})
	if err != nil {
		t.Fatal(err)
	}
	out.Signature = base64.StdEncoding.EncodeToString(sig.Signature)
	b, _ := json.MarshalIndent(out, "", "  ")
	if err := os.WriteFile(filepath.FromSlash(seedOutputs), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	in.down()
}

// lastEvent returns the ledger's newest event.
func lastEvent(t *testing.T, in *instance) *event.Event {
	t.Helper()
	recs := in.records()
	return recs[len(recs)-1].Event
}

// TestSeedIsIdempotent: seeding the same file again — after a restart —
// records one Seed event and nothing else; settings the file names that
// were changed through the API since are set again (each an audited
// event), what it does not name is left alone.
func TestSeedIsIdempotent(t *testing.T) {
	ctx := context.Background()
	in := start(t)
	if _, err := seedInstance(t, in, seedFixtures, false); err != nil {
		t.Fatal(err)
	}
	in.restart()
	before := len(in.records())
	out, err := seedInstance(t, in, seedFixtures, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range out.Keys {
		if k.Created || len(k.Changes) > 0 {
			t.Fatalf("a second seed changed %s: %+v", k.Entry, k)
		}
	}
	recs := in.records()
	if len(recs) != before+1 {
		t.Fatalf("a second seed recorded %d events, want 1", len(recs)-before)
	}
	ev := recs[len(recs)-1].Event
	if p := ev.Body.(*event.APICall).Params; ev.Operation != "Seed" || ev.Refused() || p["created"] != "0" || p["changed"] != "0" || p["unchanged"] != "12" {
		t.Fatalf("the second seed's event: %s %+v", ev.Operation, ev.Body)
	}

	// Drift through the API: a named tag changed, an extra tag added, a
	// declared alias deleted, a key declared disabled enabled.
	k0 := "49ae195b-c089-47b6-a22e-85050f7576d2"
	in.kms.TagResource(ctx, &kms.TagResourceInput{KeyId: &k0, Tags: []types.Tag{
		{TagKey: aws.String("team"), TagValue: aws.String("other")}, {TagKey: aws.String("extra"), TagValue: aws.String("kept")}}})
	in.kms.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String("alias/rotating")})
	in.kms.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String("641e63bf-6b07-4631-805f-0ef9edbb70b8")})
	out, err = seedInstance(t, in, seedFixtures, false)
	if err != nil {
		t.Fatal(err)
	}
	changes := map[string]string{}
	for _, k := range out.Keys {
		if len(k.Changes) > 0 {
			changes[k.KeyId] = strings.Join(k.Changes, " ")
		}
	}
	want := map[string]string{k0: "TagResource", "01eedf47-3f68-4eb0-a2ac-5dc2253650b9": "CreateAlias",
		"641e63bf-6b07-4631-805f-0ef9edbb70b8": "DisableKey"}
	if len(changes) != len(want) {
		t.Fatalf("changes %v, want %v", changes, want)
	}
	for id, ops := range want {
		if changes[id] != ops {
			t.Fatalf("changes %v, want %v", changes, want)
		}
	}
	tags, _ := in.kms.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: &k0})
	got := map[string]string{}
	for _, tg := range tags.Tags {
		got[*tg.TagKey] = *tg.TagValue
	}
	if got["team"] != "payments" || got["extra"] != "kept" || got["env"] != "test" {
		t.Fatalf("tags after the seed: %v", got)
	}
	d, _ := in.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/rotating")})
	if d == nil || *d.KeyMetadata.KeyId != "01eedf47-3f68-4eb0-a2ac-5dc2253650b9" {
		t.Fatal("the declared alias was not created again")
	}
}

// TestSeedRefusals: a seed that cannot apply is refused whole, with a
// message naming the entry, and recorded as a refused Seed event; nothing
// else is written, and the service keeps serving.
func TestSeedRefusals(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	if _, err := seedInstance(t, in, seedFixtures, false); err != nil {
		t.Fatal(err)
	}
	write := func(doc string) string {
		p := filepath.Join(t.TempDir(), "seed.yaml")
		if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newKey := "5b1e0c8a-3d2f-4a6b-8c9d-0e1f2a3b4c5d"
	cases := []struct {
		name, file string
		dev        bool
		code, says string
	}{
		{"known material outside development mode", seedDevFixtures, false, "ValidationException", "keys[0] (alias/dev-fixtures)"},
		{"another key spec under the id", write(`keys: [{keyId: 49ae195b-c089-47b6-a22e-85050f7576d2, keySpec: RSA_2048, keyUsage: SIGN_VERIFY}]`),
			false, "ValidationException", "KeySpec SYMMETRIC_DEFAULT; the seed says RSA_2048"},
		{"other material under the id", write(`keys: [{keyId: 49ae195b-c089-47b6-a22e-85050f7576d2, origin: EXTERNAL,
  material: T4mYMtR/8XeKFe1bRCJkWA7r4V9+vZ4GbMNHhS0gAYY=}]`), false, "IncorrectKeyMaterialException", "other key material"},
		{"another key's alias, after a valid entry", write(`keys:
  - {keyId: ` + newKey + `}
  - {keyId: 3f99c252-a9d5-4b2a-8618-20171533034b, keySpec: RSA_2048, keyUsage: SIGN_VERIFY, aliases: [alias/fixtures]}`),
			false, "AlreadyExistsException", "keys[1] (alias/fixtures)"},
		{"rotation of an asymmetric key", write(`keys: [{keyId: ` + newKey + `, keySpec: ECC_NIST_P256, keyUsage: SIGN_VERIFY, rotation: {enabled: true}}]`),
			false, "UnsupportedOperationException", "keys[0]"},
		{"an id twice", write(`keys: [{keyId: ` + newKey + `}, {keyId: ` + newKey + `}]`), false, "ValidationException", "keys[1]"},
		{"a key id that is not a UUID", write(`keys: [{keyId: fixtures}]`), false, "ValidationException", "UUID"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(in.records())
			_, err := seedInstance(t, in, c.file, c.dev)
			var e *keyservice.Error
			if !errors.As(err, &e) || string(e.Code) != c.code || !strings.Contains(e.Message, c.says) {
				t.Fatalf("err = %v, want %s saying %q", err, c.code, c.says)
			}
			if strings.Contains(e.Message, "0OHQgIMevhByRvy4") || strings.Contains(e.Message, "T4mYMtR") {
				t.Fatal("the refusal echoes key material")
			}
			recs := in.records()
			if len(recs) != before+1 || recs[len(recs)-1].Event.Operation != "Seed" || !recs[len(recs)-1].Event.Refused() {
				t.Fatalf("%d events recorded, the last %s refused=%v", len(recs)-before, recs[len(recs)-1].Event.Operation,
					recs[len(recs)-1].Event.Refused())
			}
		})
	}
	for _, id := range []string{newKey, "7c0b8e4a-2f1d-4e6b-9a3c-5d8e7f6a1b2c"} {
		if _, err := in.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)}); err == nil {
			t.Fatalf("refused seeds created %s", id)
		}
	}
	// The existing key is as it was, and still decrypts.
	k0 := "49ae195b-c089-47b6-a22e-85050f7576d2"
	enc, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k0, Plaintext: []byte("still")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob}); err != nil {
		t.Fatal(err)
	}

	// A key pending deletion is left as it is; once deleted, its id is
	// refused.
	doomed := "641e63bf-6b07-4631-805f-0ef9edbb70b8"
	if _, err := in.kms.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &doomed, PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	out, err := seedInstance(t, in, seedFixtures, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range out.Keys {
		if k.KeyId == doomed && (k.Note == "" || len(k.Changes) > 0) {
			t.Fatalf("a key pending deletion: %+v", k)
		}
	}
	in.clock.Advance(8 * 24 * time.Hour)
	waitFor(t, 10*time.Second, func() bool { return in.node.State.WasDeleted(doomed) })
	_, err = seedInstance(t, in, seedFixtures, false)
	var e *keyservice.Error
	if !errors.As(err, &e) || !strings.Contains(e.Message, "was deleted") || !strings.Contains(e.Message, "keys[4]") {
		t.Fatalf("seeding a deleted key's id: %v", err)
	}
}

// TestSeedCommand runs `keyledger seed` against a running server: the
// seed goes through the signed POST /seed, only for the operator
// account's principals, and development mode needs the server's consent.
func TestSeedCommand(t *testing.T) {
	in := start(t, withOperator(testAccount))
	run := func(user string, args ...string) (int, string) {
		return cliAs(t, user, append([]string{"seed", "--url", in.endpoint}, args...)...)
	}
	code, out := run("admin", seedFixtures)
	if code != 0 || strings.Count(out, " created ") != 12 {
		t.Fatalf("seed: exit %d\n%s", code, out)
	}
	code, out = run("admin", seedFixtures)
	if code != 0 || strings.Count(out, " unchanged ") != 12 {
		t.Fatalf("seed again: exit %d\n%s", code, out)
	}
	last := lastEvent(t, in)
	if last.Operation != "Seed" || last.Actor == nil || last.Actor.PrincipalARN != "arn:aws:iam::111122223333:user/admin" {
		t.Fatalf("the seed's event: %s %+v", last.Operation, last.Actor)
	}
	// The server was not started in development mode: --dev does not help.
	code, out = run("admin", "--dev", seedDevFixtures)
	if code != 1 || !strings.Contains(out, "ValidationException") || !strings.Contains(out, "development only") {
		t.Fatalf("--dev against a server without --seed-dev: exit %d\n%s", code, out)
	}
	// Another account's administrator may not seed, whatever its policies.
	code, out = run("erin", seedFixtures)
	if code != 1 || !strings.Contains(out, "AccessDeniedException") {
		t.Fatalf("erin: exit %d\n%s", code, out)
	}
	// Bad YAML is refused with its line, never with the file's content.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("keys:\n  - keyId: 49ae195b-c089-47b6-a22e-85050f7576d2\n    materiel: c2VjcmV0LXNlY3JldA==\n"), 0o600)
	code, out = run("admin", bad)
	if code != 1 || !strings.Contains(out, "line 3") || strings.Contains(out, "c2VjcmV0") {
		t.Fatalf("a typo: exit %d\n%s", code, out)
	}

	dev := start(t, withOperator(testAccount), withSeedDev())
	code, out = cliAs(t, "admin", "seed", "--url", dev.endpoint, "--dev", seedDevFixtures)
	if code != 0 || !strings.Contains(out, "7c0b8e4a-2f1d-4e6b-9a3c-5d8e7f6a1b2c created") {
		t.Fatalf("--dev against a --seed-dev server: exit %d\n%s", code, out)
	}
}

// TestServeSeedFlag: serve --seed seeds before it answers, a restart with
// the same file changes nothing, and known material for an AWS_KMS key
// needs --seed-dev or serve does not start.
func TestServeSeedFlag(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	principalsFile := filepath.Join(t.TempDir(), "principals.json")
	if err := os.WriteFile(principalsFile, []byte(testPrincipals), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	args := []string{"--listen", "127.0.0.1:" + strconv.Itoa(port), "--data-dir", dataDir, "--principals", principalsFile,
		"--seed", seedDevFixtures}
	code, out := serveOutput(t, []string{"KEYLEDGER_LOG_LEVEL=info"}, args...)
	if code != 1 || !strings.Contains(out, "cannot seed") || !strings.Contains(out, "development only") ||
		strings.Contains(out, "keyledger serving the AWS KMS API") {
		t.Fatalf("known material without --seed-dev: exit %d\n%s", code, out)
	}
	var want seedOutputFixture
	if err := json.Unmarshal(readSeed(t, seedOutputs), &want); err != nil {
		t.Fatal(err)
	}
	blob, _ := base64.StdEncoding.DecodeString(want.Dev)
	admin := testCredentials["admin"]
	c := newClient("http://127.0.0.1:"+strconv.Itoa(port), admin[0], admin[1])
	for run := 0; run < 2; run++ {
		cmd := exec.Command(binary, append(append([]string{"serve"}, args...), "--seed-dev")...)
		cmd.Env = append(envWithout("KEYLEDGER_LOG_LEVEL"), "KEYLEDGER_LOG_LEVEL=info")
		logs := &syncBuffer{}
		cmd.Stderr = logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var dec *kms.DecryptOutput
		var err error
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if dec, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob, EncryptionContext: fixtureContext}); err == nil {
				break
			}
		}
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if err != nil || string(dec.Plaintext) != want.Plaintext {
			t.Fatalf("run %d: the fixture ciphertext: %v\n%s", run, err, logs.String())
		}
		wantLog := []string{"created=1", "created=0"}[run]
		if !strings.Contains(logs.String(), "msg=seeded") || !strings.Contains(logs.String(), wantLog) ||
			!strings.Contains(logs.String(), "development_mode=true") {
			t.Fatalf("run %d: no %s in the log:\n%s", run, wantLog, logs.String())
		}
	}
	lines := ledgerLines(t, dataDir)
	if countType(lines, "KeyCreated.v1") != 1 {
		t.Fatalf("%d keys created over two starts", countType(lines, "KeyCreated.v1"))
	}
	var seeds int
	for _, l := range lines {
		if strings.Contains(l, `"op":"Seed"`) {
			seeds++
		}
		if strings.Contains(l, "0OHQgIMevhByRvy4") {
			t.Fatal("the ledger holds the seed's key material")
		}
	}
	if seeds != 3 { // the refused start, and one per start
		t.Fatalf("%d Seed events, want 3", seeds)
	}
}

// TestSeedOnTwoGatewaysAtOnce: two gateways of one deployment seeding the
// same file at the same moment (as every instance's `serve --seed` does at
// start) create each key and alias once: a seed is one change, fenced on
// its keys and aliases, and the loser plans again from what the winner
// recorded.
func TestSeedOnTwoGatewaysAtOnce(t *testing.T) {
	port := freePort(t)
	startNATS(t, t.TempDir(), port)
	gws := gateways(t, "nats://127.0.0.1:"+strconv.Itoa(port), 2)
	var file strings.Builder
	file.WriteString("account: \"111122223333\"\nkeys:\n")
	const n = 30
	for i := range n {
		fmt.Fprintf(&file, "  - keyId: 00000000-0000-4000-8000-%012d\n    aliases: [alias/at-once-%d]\n", i, i)
	}
	path := filepath.Join(t.TempDir(), "seed.yaml")
	if err := os.WriteFile(path, []byte(file.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	outs, errs := make([]*keyservice.SeedOutput, 2), make([]error, 2)
	ready := make(chan struct{})
	for i, g := range gws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ready
			outs[i], errs[i] = seedInstance(t, g, path, false)
		}()
	}
	close(ready)
	wg.Wait()
	created := 0
	for i := range gws {
		if errs[i] != nil {
			t.Fatalf("seed through gateway %d: %v", i, errs[i])
		}
		for _, k := range outs[i].Keys {
			if k.Created {
				created++
			}
		}
	}
	if created != n {
		t.Fatalf("%d keys reported created by the two seeds, want %d", created, n)
	}
	caughtUp(t, gws...)
	var keys, aliases int
	for _, r := range gws[0].records() {
		switch r.Event.Body.(type) {
		case *event.KeyCreated:
			keys++
		case *event.AliasCreated:
			aliases++
		}
	}
	if keys != n || aliases != n {
		t.Fatalf("%d KeyCreated and %d AliasCreated events in the ledger, want %d of each", keys, aliases, n)
	}
}
