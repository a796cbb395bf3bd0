package keyservice_test

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	ks "github.com/keyledger/keyledger/gateway/keyservice"
)

// TestRequestsSharingAContextLeaveNothingOnIt: requests the gateway runs
// under one shared context (awsjson's requestDeadlines) leave no child
// context or AfterFunc on it, refused ones included.
func TestRequestsSharingAContextLeaveNothingOnIt(t *testing.T) {
	f := newFixture(t)
	id := f.createKey(t, nil)
	mac := f.createKey(t, &ks.CreateKeyInput{KeySpec: "HMAC_256", KeyUsage: "GENERATE_VERIFY_MAC"})
	blob := f.encrypt(t, alice, id, []byte("x"), map[string]string{"a": "b"})
	shared, cancel := context.WithDeadline(context.Background(), time.Now().Add(30*time.Second))
	defer cancel()
	calls := []func() error{
		func() error {
			_, err := f.svc.Encrypt(shared, alice, &ks.EncryptInput{KeyId: id, Plaintext: []byte("p")})
			return err
		},
		func() error {
			_, err := f.svc.Decrypt(shared, alice, &ks.DecryptInput{CiphertextBlob: blob, EncryptionContext: map[string]string{"a": "b"}})
			return err
		},
		func() error {
			_, err := f.svc.Decrypt(shared, bob, &ks.DecryptInput{CiphertextBlob: blob}) // refused
			return err
		},
		func() error {
			_, err := f.svc.GenerateDataKey(shared, alice, &ks.GenerateDataKeyInput{KeyId: id, KeySpec: "AES_256"})
			return err
		},
		func() error {
			_, err := f.svc.ReEncrypt(shared, alice, &ks.ReEncryptInput{CiphertextBlob: blob, SourceEncryptionContext: map[string]string{"a": "b"}, DestinationKeyId: id})
			return err
		},
		func() error {
			_, err := f.svc.GenerateMac(shared, alice, &ks.MacInput{KeyId: mac, Message: []byte("m"), MacAlgorithm: "HMAC_SHA_256"})
			return err
		},
		func() error { _, err := f.svc.DescribeKey(shared, alice, &ks.KeyIDInput{KeyId: id}); return err },
		func() error { _, err := f.svc.CreateKey(shared, alice, &ks.CreateKeyInput{}); return err },
		func() error { _, err := f.svc.RotateKeyOnDemand(shared, alice, &ks.KeyIDInput{KeyId: id}); return err },
	}
	var wg sync.WaitGroup
	for i := range 10 * len(calls) {
		wg.Go(func() {
			if err := calls[i%len(calls)](); err != nil && i%len(calls) != 2 {
				t.Errorf("call %d: %v", i%len(calls), err)
			}
		})
	}
	wg.Wait()
	v := reflect.ValueOf(shared).Elem().FieldByName("cancelCtx").FieldByName("children")
	if !v.IsValid() || v.Kind() != reflect.Map {
		t.Skipf("%T keeps no children map to count", shared)
	}
	if v.Len() != 0 {
		t.Fatalf("%d children left on the shared request context", v.Len())
	}
}
