package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/keyledger/keyledger/crypto/hsm"
	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/crypto/seal"
	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/gateway/node"
	"github.com/keyledger/keyledger/gateway/principals"
)

// openRoot loads the root key: a seal file (a ring that stays sealed until
// unsealAtStart or unseal shares open it), or the plaintext root key file
// (generated on first start).
func openRoot(keyFile, sealFile, dataDir string, log *slog.Logger) (keyservice.RootKey, *seal.Keeper, error) {
	if sealFile != "" {
		if keyFile != "" {
			return nil, nil, errors.New("--root-seal and --root-key-file exclude each other")
		}
		plain := filepath.Join(dataDir, "root.key")
		if _, err := os.Stat(plain); err == nil {
			log.Warn("a plaintext root key file is still in the data directory; destroy it once the seal file is in use", "path", plain)
		}
		ring := rootkey.NewRing()
		keeper, err := seal.NewKeeper(sealFile, ring)
		if err != nil {
			return nil, nil, err
		}
		log.Info("root key is sealed", "mode", keeper.Mode(), "file", sealFile)
		if err := keeper.CheckStrength(); err != nil {
			log.Warn("the seal file's passphrase derivation is weak: a stolen copy can be opened by guessing; "+
				"seal the root key again (keyledger root seal) with the default parameters", "problem", err)
		}
		return ring, keeper, nil
	}
	keyPath := keyFile
	if keyPath == "" {
		keyPath = filepath.Join(dataDir, "root.key")
	}
	root, created, err := rootkey.LoadOrCreate(keyPath)
	if err != nil {
		return nil, nil, err
	}
	if created {
		log.Warn("generated a NEW root key; production must supply its own with --root-key-file (or seal one: keyledger root init) and back it up: without it no key can be used",
			"path", keyPath)
	}
	log.Info("root key loaded", "fingerprint", root.Fingerprint())
	return root, nil, nil
}

// maxPromptAttempts bounds passphrase attempts on a terminal.
const maxPromptAttempts = 3

// unsealAtStart opens a passphrase seal (recording the unseal, and any
// failed attempts, in the ledger, which runs by now), or announces that
// the instance waits for unseal shares.
func unsealAtStart(ctx context.Context, n *node.Node, keeper *seal.Keeper, env *rootSecrets, log *slog.Logger) error {
	if keeper.Mode() == seal.ModeShamir {
		p := keeper.Progress()
		log.Warn("keyledger is SEALED: KMS requests answer 503 until enough unseal shares are submitted with "+
			"`keyledger unseal --url <endpoint>` by principals allowed keyledger:Unseal", "threshold", p.Threshold)
		return nil
	}
	if keeper.Mode() == seal.ModePKCS11 {
		return unsealHSM(ctx, n, keeper, env, log)
	}
	interactive := !env.hasPassphrase
	failed := 0
	for {
		pass, err := readPassphrase(env, false)
		if err != nil {
			return err
		}
		err = keeper.UnsealPassphrase(pass)
		clear(pass)
		if err == nil {
			break
		}
		if !errors.Is(err, seal.ErrOpen) {
			return err
		}
		failed++
		log.Warn("the passphrase does not open the root key", "attempt", failed)
		if !interactive || failed >= maxPromptAttempts {
			if rerr := n.Service.RecordUnsealFailed(ctx, keeper.Mode(), failed); rerr != nil {
				log.Error("could not record the failed unseal attempts", "error", rerr)
			}
			return seal.ErrOpen
		}
	}
	_, current := keeper.Versions()
	if err := n.Service.RecordUnsealed(ctx, keeper.Mode(), current, failed); err != nil {
		return err
	}
	log.Info("root key unsealed", "mode", keeper.Mode(), "root_version", current)
	if n.Rotation != nil {
		n.Rotation.Resume()
	}
	return nil
}

// unsealHSM logs in to the token with the PIN and finds the root key
// versions there; a refused PIN is recorded in the ledger.
func unsealHSM(ctx context.Context, n *node.Node, keeper *seal.Keeper, env *rootSecrets, log *slog.Logger) error {
	p := keeper.PKCS11()
	t, err := openToken(env, p.Module, p.Token)
	if errors.Is(err, hsm.ErrPIN) {
		if rerr := n.Service.RecordUnsealFailed(ctx, keeper.Mode(), 1); rerr != nil {
			log.Error("could not record the failed unseal attempt", "error", rerr)
		}
		return err
	}
	if err != nil {
		return err
	}
	if err := keeper.UnsealHSM(t); err != nil {
		t.Close()
		return err
	}
	_, current := keeper.Versions()
	if err := n.Service.RecordUnsealed(ctx, keeper.Mode(), current, 0); err != nil {
		return err
	}
	log.Info("root key unsealed: wrapping happens in the HSM", "token", p.Token, "root_version", current)
	if n.Rotation != nil {
		n.Rotation.Resume()
	}
	return nil
}

// checkOperator settles the operator account (--operator-account, else
// --account, the generated admin's) and says where it stands: without
// principals in it nobody can unseal or rotate the root key, which stops a
// start that must wait for unseal shares.
func checkOperator(operator, account string, dir *principals.Directory, keeper *seal.Keeper, log *slog.Logger) (string, error) {
	if operator == "" {
		operator = account
	}
	if !dir.HasAccount(operator) {
		if keeper != nil && keeper.Mode() == seal.ModeShamir {
			return "", fmt.Errorf("the operator account %s has no principals, and only its principals may submit unseal shares; "+
				"pass --operator-account with an account of the principals file", operator)
		}
		log.Warn("the operator account has no principals: nobody can unseal or rotate the root key; set --operator-account",
			"operator_account", operator)
		return operator, nil
	}
	log.Info("unsealing and root key rotation are reserved to the operator account", "operator_account", operator)
	return operator, nil
}
