package keyservice_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	ks "github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/projections/keystate"
)

// TestKeyStateMachine walks one key through AWS's key states. Each step is
// one request; refused or not, it leaves one event in the ledger and the
// key in the state wanted.
func TestKeyStateMachine(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id := f.createKey(t, nil)
	if got := f.key(t, id).State; got != keystate.Enabled {
		t.Fatalf("a new key is %s, want Enabled", got)
	}
	keyID := &ks.KeyIDInput{KeyId: id}
	schedule := func(days int32) func() error {
		return func() error {
			_, err := f.svc.ScheduleKeyDeletion(ctx, alice, &ks.ScheduleKeyDeletionInput{KeyId: id, PendingWindowInDays: &days})
			return err
		}
	}
	encrypt := func() error {
		_, err := f.svc.Encrypt(ctx, alice, &ks.EncryptInput{KeyId: id, Plaintext: []byte("x")})
		return err
	}
	enable := func() error { _, err := f.svc.EnableKey(ctx, alice, keyID); return err }
	disable := func() error { _, err := f.svc.DisableKey(ctx, alice, keyID); return err }
	cancel := func() error { _, err := f.svc.CancelKeyDeletion(ctx, alice, keyID); return err }
	describe := func() error { _, err := f.svc.DescribeKey(ctx, alice, keyID); return err }

	steps := []struct {
		name  string
		op    string
		do    func() error
		code  ks.Code
		state keystate.KeyState
	}{
		{"encrypt while enabled", "Encrypt", encrypt, "", keystate.Enabled},
		{"disable", "DisableKey", disable, "", keystate.Disabled},
		{"disable again", "DisableKey", disable, "", keystate.Disabled},
		{"encrypt while disabled", "Encrypt", encrypt, ks.CodeDisabled, keystate.Disabled},
		{"describe while disabled", "DescribeKey", describe, "", keystate.Disabled},
		{"enable", "EnableKey", enable, "", keystate.Enabled},
		{"cancel deletion not scheduled", "CancelKeyDeletion", cancel, ks.CodeInvalidState, keystate.Enabled},
		{"schedule 6 days", "ScheduleKeyDeletion", schedule(6), ks.CodeValidation, keystate.Enabled},
		{"schedule 31 days", "ScheduleKeyDeletion", schedule(31), ks.CodeValidation, keystate.Enabled},
		{"schedule 7 days", "ScheduleKeyDeletion", schedule(7), "", keystate.PendingDeletion},
		{"schedule again", "ScheduleKeyDeletion", schedule(7), ks.CodeInvalidState, keystate.PendingDeletion},
		{"encrypt while pending deletion", "Encrypt", encrypt, ks.CodeInvalidState, keystate.PendingDeletion},
		{"enable while pending deletion", "EnableKey", enable, ks.CodeInvalidState, keystate.PendingDeletion},
		{"disable while pending deletion", "DisableKey", disable, ks.CodeInvalidState, keystate.PendingDeletion},
		{"describe while pending deletion", "DescribeKey", describe, "", keystate.PendingDeletion},
		{"cancel deletion", "CancelKeyDeletion", cancel, "", keystate.Disabled},
		{"enable after cancel", "EnableKey", enable, "", keystate.Enabled},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			before := len(f.ledger.records())
			err := st.do()
			if got := codeOf(err); got != st.code {
				t.Fatalf("error %v (code %q), want code %q", err, got, st.code)
			}
			if n := len(f.ledger.records()) - before; n != 1 {
				t.Errorf("%d events recorded, want 1", n)
			}
			f.checkRecorded(t, st.op, st.code)
			if got := f.key(t, id).State; got != st.state {
				t.Errorf("state %s, want %s", got, st.state)
			}
		})
	}
}

// TestDeletionFallsDue schedules a deletion and moves the clock: the key
// goes only when its window has passed, with its material and aliases, and
// its ciphertexts then name a key that does not exist.
func TestDeletionFallsDue(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	id := f.createKey(t, nil)
	blob := f.encrypt(t, alice, id, []byte("secret"), nil)
	if _, err := f.svc.CreateAlias(ctx, alice, &ks.AliasInput{AliasName: "alias/doomed", TargetKeyId: id}); err != nil {
		t.Fatal(err)
	}
	out, err := f.svc.ScheduleKeyDeletion(ctx, alice, &ks.ScheduleKeyDeletionInput{KeyId: id, PendingWindowInDays: ptr(int32(7))})
	if err != nil {
		t.Fatal(err)
	}
	want := &ks.ScheduleKeyDeletionOutput{KeyId: "arn:aws:kms:us-east-1:111122223333:key/" + id,
		DeletionDate: ptr(ks.EpochTime(t0.Add(7 * 24 * time.Hour))), KeyState: "PendingDeletion", PendingWindowInDays: 7}
	if diff := cmp.Diff(want, out, epochTimes); diff != "" {
		t.Fatalf("ScheduleKeyDeletion (-want +got):\n%s", diff)
	}
	k := f.key(t, id)
	material := k.CurrentMaterial().ID

	f.clock.advance(7*24*time.Hour - time.Second)
	if err := f.svc.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.key(t, id).State; got != keystate.PendingDeletion {
		t.Fatalf("a second before its date the key is %s", got)
	}

	f.clock.advance(time.Second)
	if err := f.svc.RunDue(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.state.Key(id); ok {
		t.Fatal("the key outlived its deletion date")
	}
	if ev := f.ledger.last(t); ev.Operation != "DeleteKey" || ev.KeyID != id {
		t.Errorf("last event %s on %s, want DeleteKey on %s", ev.Operation, ev.KeyID, id)
	}
	if f.mats.has(material) {
		t.Error("the deleted key's material is still stored")
	}
	if _, ok := f.state.Alias(account, "alias/doomed"); ok {
		t.Error("the deleted key's alias remains")
	}
	for name, do := range map[string]func() error{
		"DescribeKey": func() error { _, err := f.svc.DescribeKey(ctx, alice, &ks.KeyIDInput{KeyId: id}); return err },
		"Decrypt": func() error {
			_, err := f.svc.Decrypt(ctx, alice, &ks.DecryptInput{CiphertextBlob: blob})
			return err
		},
	} {
		if got := codeOf(do()); got != ks.CodeNotFound {
			t.Errorf("%s of a deleted key: %q, want %q", name, got, ks.CodeNotFound)
		}
	}
}

// TestCreateKeyRefusals checks CreateKey's validation: each refusal is the
// AWS code and creates nothing.
func TestCreateKeyRefusals(t *testing.T) {
	tests := []struct {
		name   string
		caller ks.Caller
		in     ks.CreateKeyInput
		code   ks.Code
	}{
		{"no identity policy", bob, ks.CreateKeyInput{}, ks.CodeAccessDenied},
		{"unknown spec", alice, ks.CreateKeyInput{KeySpec: "AES_512"}, ks.CodeValidation},
		{"spec and deprecated spec", alice, ks.CreateKeyInput{KeySpec: "RSA_2048", CustomerMasterKeySpec: "RSA_2048"}, ks.CodeValidation},
		{"usage the spec cannot have", alice, ks.CreateKeyInput{KeySpec: "HMAC_256", KeyUsage: "ENCRYPT_DECRYPT"}, ks.CodeValidation},
		{"elliptic curve without usage", alice, ks.CreateKeyInput{KeySpec: "ECC_NIST_P256"}, ks.CodeValidation},
		{"custom key store origin", alice, ks.CreateKeyInput{Origin: "AWS_CLOUDHSM"}, ks.CodeUnsupportedOperation},
		{"custom key store id", alice, ks.CreateKeyInput{CustomKeyStoreId: "cks-1"}, ks.CodeCustomKeyStoreNotFnd},
		{"policy without principal", alice, ks.CreateKeyInput{Policy: ptr(`{"Version":"2012-10-17","Statement":[
			{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}`)}, ks.CodeMalformedPolicy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			_, err := f.svc.CreateKey(context.Background(), tt.caller, &tt.in)
			if got := codeOf(err); got != tt.code {
				t.Fatalf("error %v (code %q), want code %q", err, got, tt.code)
			}
			f.checkRecorded(t, "CreateKey", tt.code)
			if keys := f.state.Keys(account); len(keys) != 0 {
				t.Errorf("a refused CreateKey made %d keys", len(keys))
			}
		})
	}
}

// TestMetadata checks what DescribeKey says about keys of each kind.
func TestMetadata(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tests := []struct {
		in   ks.CreateKeyInput
		want ks.KeyMetadata
	}{
		{ks.CreateKeyInput{Description: ptr("d")}, ks.KeyMetadata{Description: "d", KeyUsage: "ENCRYPT_DECRYPT",
			Origin: "AWS_KMS", KeySpec: "SYMMETRIC_DEFAULT", CustomerMasterKeySpec: "SYMMETRIC_DEFAULT",
			EncryptionAlgorithms: []string{"SYMMETRIC_DEFAULT"}, Enabled: true, KeyState: "Enabled"}},
		{ks.CreateKeyInput{KeySpec: "HMAC_256", KeyUsage: "GENERATE_VERIFY_MAC"}, ks.KeyMetadata{KeyUsage: "GENERATE_VERIFY_MAC",
			Origin: "AWS_KMS", KeySpec: "HMAC_256", CustomerMasterKeySpec: "HMAC_256",
			MacAlgorithms: []string{"HMAC_SHA_256"}, Enabled: true, KeyState: "Enabled"}},
		{ks.CreateKeyInput{Origin: "EXTERNAL"}, ks.KeyMetadata{KeyUsage: "ENCRYPT_DECRYPT",
			Origin: "EXTERNAL", KeySpec: "SYMMETRIC_DEFAULT", CustomerMasterKeySpec: "SYMMETRIC_DEFAULT",
			EncryptionAlgorithms: []string{"SYMMETRIC_DEFAULT"}, KeyState: "PendingImport"}},
	}
	for _, tt := range tests {
		t.Run(tt.want.KeySpec+"/"+tt.want.Origin, func(t *testing.T) {
			id := f.createKey(t, &tt.in)
			out, err := f.svc.DescribeKey(ctx, alice, &ks.KeyIDInput{KeyId: id})
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			want.AWSAccountId, want.KeyId, want.Arn = account, id, "arn:aws:kms:us-east-1:111122223333:key/"+id
			want.CreationDate, want.KeyManager = ks.EpochTime(t0), "CUSTOMER"
			if k := f.key(t, id); k.HasMaterial() {
				want.CurrentKeyMaterialId = k.CurrentMaterial().ID
			}
			if diff := cmp.Diff(&want, out.KeyMetadata, epochTimes, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("KeyMetadata (-want +got):\n%s", diff)
			}
		})
	}
}
