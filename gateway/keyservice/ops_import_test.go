package keyservice_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/ledger/event"
)

// flakyMaterials is a material store whose Destroy fails while fail is set.
type flakyMaterials struct {
	*memMaterials
	fail atomic.Bool
}

func (m *flakyMaterials) Destroy(ctx context.Context, id string) error {
	if m.fail.Load() {
		return errors.New("flakyMaterials: the disk said no")
	}
	return m.memMaterials.Destroy(ctx, id)
}

// importKey creates an EXTERNAL key, imports 32 random bytes into it and
// returns the key id and its material id.
func importKey(t *testing.T, f *fixture) (string, string) {
	t.Helper()
	ctx := context.Background()
	id := f.createKey(t, &keyservice.CreateKeyInput{Origin: "EXTERNAL"})
	p, err := f.svc.GetParametersForImport(ctx, alice, &keyservice.GetParametersForImportInput{KeyId: id,
		WrappingAlgorithm: "RSAES_OAEP_SHA_256", WrappingKeySpec: "RSA_2048"})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.ParsePKIXPublicKey(p.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	mat := make([]byte, 32)
	rand.Read(mat)
	wrapped, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub.(*rsa.PublicKey), mat, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := f.svc.ImportKeyMaterial(ctx, alice, &keyservice.ImportKeyMaterialInput{KeyId: id, ImportToken: p.ImportToken,
		EncryptedKeyMaterial: wrapped, ExpirationModel: "KEY_MATERIAL_DOES_NOT_EXPIRE"})
	if err != nil {
		t.Fatal(err)
	}
	return id, out.KeyMaterialId
}

// DeleteImportedKeyMaterial answers success only once the material is
// gone. A failed destruction is answered KMSInternalException; the
// deletion stays recorded (the key has no usable material) and the
// scheduler's next run finishes the destruction.
func TestDeleteImportedKeyMaterialAnswersOnlyOnceDestroyed(t *testing.T) {
	f := newFixture(t)
	flaky := &flakyMaterials{memMaterials: f.mats}
	f.cfg.Materials = flaky
	f.restart()
	ctx := context.Background()
	id, matID := importKey(t, f)

	flaky.fail.Store(true)
	_, err := f.svc.DeleteImportedKeyMaterial(ctx, alice, &keyservice.DeleteImportedKeyMaterialInput{KeyId: id})
	if e := keyservice.AsError(err); err == nil || e.Code != keyservice.CodeInternal {
		t.Fatalf("DeleteImportedKeyMaterial with the material store failing = %v, want KMSInternalException", err)
	}
	if _, ok := f.ledger.last(t).Body.(*event.KeyMaterialDeleted); !ok {
		t.Fatalf("the deletion is not recorded: last event %s", f.ledger.last(t).Operation)
	}
	if _, err := f.svc.Encrypt(ctx, alice, &keyservice.EncryptInput{KeyId: id, Plaintext: []byte("x")}); err == nil {
		t.Fatal("the key encrypts after its material's deletion was recorded")
	}
	if err := f.svc.RunDue(ctx); err == nil && !f.mats.has(matID) {
		t.Fatal("RunDue destroyed the material while the store fails")
	}

	flaky.fail.Store(false)
	if err := f.svc.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	if f.mats.has(matID) {
		t.Fatal("the scheduler's run did not finish destroying the material")
	}

	// The ordinary case: answered once the material is gone.
	id2, mat2 := importKey(t, f)
	if _, err := f.svc.DeleteImportedKeyMaterial(ctx, alice, &keyservice.DeleteImportedKeyMaterialInput{KeyId: id2}); err != nil {
		t.Fatal(err)
	}
	if f.mats.has(mat2) {
		t.Fatal("DeleteImportedKeyMaterial answered while the material is stored")
	}
}

// A crash after the deletion is recorded and before the material is
// destroyed: the restarted service's start-up sweep destroys it.
func TestDeleteImportedKeyMaterialCrashIsSwept(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id, matID := importKey(t, f)
	k := f.key(t, id)
	// What the crashed instance recorded before it could destroy anything.
	if _, err := f.ledger.Append(ctx, &event.Event{Time: f.clock.Now(), Operation: "DeleteImportedKeyMaterial",
		Account: k.Account, Region: k.Region, KeyID: id, Body: &event.KeyMaterialDeleted{MaterialID: matID}}); err != nil {
		t.Fatal(err)
	}
	if !f.mats.has(matID) {
		t.Fatal("the material is gone before the sweep: the test proves nothing")
	}
	f.restart()
	if err := f.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if f.mats.has(matID) {
		t.Fatal("the start-up sweep left the material of a recorded deletion")
	}
}
