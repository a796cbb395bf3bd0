package keyservice_test

import (
	"context"
	"strings"
	"testing"

	"github.com/keyledger/keyledger/crypto/seal"
	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/material"
	"github.com/keyledger/keyledger/projections/policy"
)

// fakeSeal is a Shamir seal that takes shares named "good…" and refuses
// "junk…" alone, as a seal file with check values does.
type fakeSeal struct{ submitted int }

func (f *fakeSeal) Mode() string { return seal.ModeShamir }
func (f *fakeSeal) Progress() seal.Progress {
	return seal.Progress{Sealed: true, Threshold: 3, Submitted: f.submitted}
}
func (f *fakeSeal) SubmitShare(s string) (seal.Progress, error) {
	if strings.HasPrefix(s, "junk") {
		return f.Progress(), seal.ErrShare
	}
	f.submitted++
	return f.Progress(), nil
}
func (f *fakeSeal) Versions() ([]uint32, uint32) { return []uint32{1}, 1 }
func (f *fakeSeal) RotatePublished(func([]byte) error) (uint32, uint32, error) {
	return 1, 2, nil
}
func (f *fakeSeal) Export() ([]byte, error)     { return nil, nil }
func (f *fakeSeal) Follow([]byte) (bool, error) { return false, nil }
func (f *fakeSeal) Retire(uint32) error         { return nil }
func (f *fakeSeal) GetStored(context.Context, string) (material.Stored, error) {
	return material.Stored{}, nil
}
func (f *fakeSeal) Rewrap(context.Context, string, material.Stored, []byte) error { return nil }
func (f *fakeSeal) IDs(context.Context) ([]string, error)                         { return nil, nil }

// TestServiceWideOperationsNeedTheOperatorAccount: unseal progress, shares
// and root key rotation status are refused to a keyledger:* principal of
// another account and to an operator-account principal without a
// keyledger policy; with no operator account, to everyone.
func TestServiceWideOperationsNeedTheOperatorAccount(t *testing.T) {
	admin := func(acct, name string) keyservice.Caller {
		return keyservice.Caller{AccessKeyID: "AKIA" + name, PrincipalARN: "arn:aws:iam::" + acct + ":user/" + name, Account: acct,
			Identity: []*policy.Document{mustParse(`{"Version":"2012-10-17","Statement":[
				{"Effect":"Allow","Action":["kms:*","keyledger:*"],"Resource":"*"}]}`)}}
	}
	operator, tenant := admin(account, "ops"), admin("444455556666", "tenant")
	for _, tc := range []struct {
		name    string
		opAcct  string
		caller  keyservice.Caller
		allowed bool
	}{
		{"operator", account, operator, true},
		{"another account's keyledger:*", account, tenant, false},
		{"operator account without the action", account, alice, false},
		{"no operator account", "", operator, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.cfg.OperatorAccount = tc.opAcct
			f.restart()
			fs := &fakeSeal{}
			unseal := f.svc.NewUnseal(fs, nil)
			rotation := f.svc.NewRootRotation(fs, fs, nil)
			want := keyservice.Code("")
			if !tc.allowed {
				want = keyservice.CodeAccessDenied
			}
			_, err := unseal.Progress(tc.caller)
			if codeOf(err) != want {
				t.Errorf("unseal progress: %v", err)
			}
			_, err = unseal.SubmitShare(context.Background(), tc.caller, "good 1")
			if codeOf(err) != want {
				t.Errorf("unseal share: %v", err)
			}
			if !tc.allowed {
				f.checkRecorded(t, "UnsealRoot", keyservice.CodeAccessDenied)
			}
			_, err = rotation.Status(tc.caller)
			if codeOf(err) != want {
				t.Errorf("rotation status: %v", err)
			}
		})
	}
}

// TestJunkShareKeepsTheGoodOnes: a share the seal refuses alone is
// answered ValidationException saying the earlier shares are kept, and
// recorded as a failed attempt by its submitter only.
func TestJunkShareKeepsTheGoodOnes(t *testing.T) {
	f := newFixture(t)
	f.cfg.OperatorAccount = account
	f.restart()
	op := keyservice.Caller{AccessKeyID: "AKIAOPS", PrincipalARN: "arn:aws:iam::" + account + ":user/ops", Account: account,
		Identity: []*policy.Document{mustParse(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"keyledger:Unseal","Resource":"*"}]}`)}}
	unseal := f.svc.NewUnseal(&fakeSeal{}, nil)
	ctx := context.Background()
	for range 2 {
		if _, err := unseal.SubmitShare(ctx, op, "good"); err != nil {
			t.Fatal(err)
		}
	}
	p, err := unseal.SubmitShare(ctx, op, "junk")
	if codeOf(err) != keyservice.CodeValidation || !strings.Contains(err.Error(), "2 share(s) submitted before it are kept") || p.Submitted != 2 {
		t.Fatalf("junk share: %+v %v", p, err)
	}
	ev := f.ledger.last(t)
	failed, ok := ev.Body.(*event.RootUnsealFailed)
	if !ok || failed.Attempts != 1 || len(failed.Submitters) != 1 || failed.Submitters[0] != op.PrincipalARN {
		t.Fatalf("recorded %T %+v", ev.Body, ev.Body)
	}
}
