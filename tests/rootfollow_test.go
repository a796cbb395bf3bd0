package tests

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/crypto/seal"
	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/projections/policy"
)

const sealPassphrase = "shared by the instances"

// newSealFiles seals a new root key under sealPassphrase and saves a copy
// of the seal file per instance, as a deployment hands each its own.
func newSealFiles(t *testing.T, names ...string) []string {
	t.Helper()
	// Cheap Argon2id parameters keep the test fast; they are below the
	// minimum serve enforces, hence the unsafe constructor.
	f, err := seal.UnsafeNewPassphrase(rootkey.Generate(), []byte(sealPassphrase), seal.Argon2{Time: 1, MemoryKiB: 1024, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var paths []string
	for _, n := range names {
		p := filepath.Join(dir, n+".seal")
		if err := f.Save(p); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// unsealedKeeper opens the seal file at path with sealPassphrase.
func unsealedKeeper(t *testing.T, path string) (*rootkey.Ring, *seal.Keeper) {
	t.Helper()
	ring := rootkey.NewRing()
	k, err := seal.NewKeeper(path, ring)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.UnsealPassphrase([]byte(sealPassphrase)); err != nil {
		t.Fatal(err)
	}
	return ring, k
}

var rootAdmin = keyservice.Caller{AccessKeyID: testCredentials["admin"][0], PrincipalARN: "arn:aws:iam::" + testAccount + ":user/admin",
	Account: testAccount, Identity: []*policy.Document{mustPolicy(`{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":["kms:*","keyledger:*"],"Resource":"*"}]}`)}}

func mustPolicy(text string) *policy.Document {
	d, err := policy.Parse(text)
	if err != nil {
		panic(err)
	}
	return d
}

func rootVersions(t *testing.T, i *instance) []uint32 {
	t.Helper()
	st, err := i.node.Rotation.Status(rootAdmin)
	if err != nil {
		t.Fatal(err)
	}
	return st.Versions
}

func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, limit)
		}
	}
}

// encryptDecrypt encrypts on one instance and decrypts on another.
func encryptDecrypt(t *testing.T, on, off *instance, key, what string) {
	t.Helper()
	ctx := context.Background()
	pt := []byte(what)
	enc, err := on.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &key, Plaintext: pt})
	if err != nil {
		t.Fatalf("%s: Encrypt: %v", what, err)
	}
	// The stream sequence: an index counts one chain only, and each
	// instance writes its own data chain.
	head := on.node.Ledger.Head().Seq
	waitUntil(t, 10*time.Second, "the other instance catches up", func() bool { return off.node.Ledger.Head().Seq >= head })
	dec, err := off.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	if err != nil || !bytes.Equal(dec.Plaintext, pt) {
		t.Logf("logs of %s:\n%s", "the decrypting instance", off.logs.String())
		t.Fatalf("%s: Decrypt on the other instance: %v", what, err)
	}
}

// TestRootRotationReachesOtherInstances: two instances share a ledger and
// a passphrase seal (each its own copy of the file). The root key is
// rotated on a; b takes the new version from the ledger and the shared
// seal without a restart: it decrypts and encrypts under keys made on a
// after the rotation, makes keys under the new version itself, and drops
// the old version when the rotation (rewrapped by whichever runs the
// scheduler) retires it. Each copy of the seal file ends with the new
// version only; the ledger records one rotation and one retirement.
func TestRootRotationReachesOtherInstances(t *testing.T) {
	port := freePort(t)
	startNATS(t, t.TempDir(), port)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	seals := newSealFiles(t, "a", "b")
	a := start(t, withNATS(url), withSeal(seals[0]), withOperator(testAccount))
	b := start(t, withNATS(url), withSeal(seals[1]), withOperator(testAccount))
	for _, i := range []*instance{a, b} {
		// Two instances writing key state conflict now and then
		// (KMSInternalException, 500): let the SDK retry, as by default.
		i.kms = kms.New(i.kms.Options(), func(o *kms.Options) { o.RetryMaxAttempts = 5 })
	}
	ctx := context.Background()
	before := a.createKey("before the rotation")
	encryptDecrypt(t, a, b, before, "before the rotation")

	if _, err := a.node.Rotation.Start(ctx, rootAdmin); err != nil {
		t.Logf("a's log:\n%s", a.logs.String())
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "b takes root version 2", func() bool { return slices.Contains(rootVersions(t, b), 2) })
	after := a.createKey("made on a after the rotation")
	encryptDecrypt(t, a, b, after, "a's new key, encrypted on a")
	encryptDecrypt(t, b, a, after, "a's new key, encrypted on b")
	made := b.createKey("made on b after the rotation")
	d, err := b.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &made})
	if err != nil {
		t.Fatal(err)
	}
	st, err := b.node.Materials.GetStored(ctx, *d.KeyMetadata.CurrentKeyMaterialId)
	if err != nil || rootkey.VersionOf(st.Wrapped) != 2 {
		t.Fatalf("b's new material: root version %d, %v; want 2", rootkey.VersionOf(st.Wrapped), err)
	}
	encryptDecrypt(t, b, a, made, "b's new key")

	// The scheduler (on a or b) rewraps and retires version 1; both drop it.
	for _, i := range []*instance{a, b} {
		waitUntil(t, 30*time.Second, "version 1 retired everywhere", func() bool { return slices.Equal(rootVersions(t, i), []uint32{2}) })
	}
	for _, p := range seals {
		f, err := seal.Load(p)
		if err != nil || f.Current != 2 || len(f.Versions) != 1 {
			t.Fatalf("seal file %s after the rotation: %+v %v", p, f, err)
		}
	}
	encryptDecrypt(t, b, a, before, "the old key, rewrapped")
	encryptDecrypt(t, a, b, made, "b's key, after retirement")
	last := b.createKey("made on b after the retirement")
	encryptDecrypt(t, b, a, last, "b's key made after the retirement")

	started, retired := 0, 0
	for _, r := range a.records() {
		switch r.Event.Body.(type) {
		case *event.RootRotationStarted:
			started++
		case *event.RootVersionRetired:
			retired++
		}
	}
	if started != 1 || retired != 1 {
		t.Errorf("ledger: %d RootRotationStarted, %d RootVersionRetired; want 1 and 1", started, retired)
	}
}
