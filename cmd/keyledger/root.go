package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/keyledger/keyledger/crypto/hsm"
	"github.com/keyledger/keyledger/crypto/rootkey"
	"github.com/keyledger/keyledger/crypto/seal"
	"github.com/keyledger/keyledger/crypto/secret"
	"github.com/keyledger/keyledger/gateway/rootclient"
	"github.com/keyledger/keyledger/gateway/sigv4"
)

const rootUsage = `usage:
  keyledger root init --seal passphrase|shamir|pkcs11 --out FILE [--shares N --threshold M]
                     [--pkcs11-module LIB --pkcs11-token LABEL]
                                   create a new root key, sealed; never written in plaintext
  keyledger root seal --from root.key --seal passphrase|shamir|pkcs11 --out FILE [...]
                                   seal an existing plaintext root key (then destroy the plaintext file)
  keyledger root rotate --url URL  start an online root key rotation (keyledger:RotateRootKey)
  keyledger root status --url URL  the rotation's progress
The passphrase comes from KEYLEDGER_ROOT_PASSPHRASE, the HSM user PIN from KEYLEDGER_HSM_PIN, or a terminal prompt (both are removed
from the environment as the command starts). A new passphrase needs at least 12 characters, and --argon2-* at least OWASP's minimum
(19 MiB and 2 passes, or 46 MiB and 1). Credentials for --url come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
`

// passphraseEnv and pinEnv name where a passphrase or HSM PIN may come from
// instead of a prompt.
const (
	passphraseEnv = "KEYLEDGER_ROOT_PASSPHRASE"
	pinEnv        = "KEYLEDGER_HSM_PIN"
)

// readPIN takes the HSM user PIN from the environment (as taken at start)
// or the terminal.
func readPIN(env *rootSecrets) ([]byte, error) {
	if env.hasPIN && len(env.pin) > 0 {
		return bytes.Clone(env.pin), nil
	}
	p, err := promptSecret("HSM user PIN: ")
	if err != nil {
		return nil, fmt.Errorf("%v; set %s", err, pinEnv)
	}
	return p, nil
}

// openToken logs in to the PKCS#11 token with the PIN.
func openToken(env *rootSecrets, module, token string) (*hsm.Token, error) {
	pin, err := readPIN(env)
	if err != nil {
		return nil, err
	}
	defer clear(pin)
	s := secret.New(pin)
	defer s.Clear()
	return hsm.Open(module, token, s)
}

func rootCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, rootUsage)
		return 2
	}
	switch args[0] {
	case "init", "seal":
		return rootSeal(args[0], args[1:], stdout, stderr)
	case "rotate", "status":
		return rootRotate(args[0], args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, rootUsage)
	return 2
}

// readPassphrase takes the passphrase from the environment (as taken at
// start), or asks on the terminal (twice when confirm is set).
func readPassphrase(env *rootSecrets, confirm bool) ([]byte, error) {
	if env.hasPassphrase {
		if len(env.passphrase) == 0 {
			return nil, errors.New(passphraseEnv + " is empty")
		}
		return bytes.Clone(env.passphrase), nil
	}
	p, err := promptSecret("root key passphrase: ")
	if err != nil {
		return nil, fmt.Errorf("%v; set %s", err, passphraseEnv)
	}
	if confirm {
		again, err := promptSecret("again: ")
		if err != nil {
			return nil, err
		}
		if string(again) != string(p) {
			return nil, errors.New("the passphrases differ")
		}
	}
	if len(p) == 0 {
		return nil, errors.New("empty passphrase")
	}
	return p, nil
}

func rootSeal(cmd string, args []string, stdout, stderr io.Writer) int {
	env := takeRootSecrets()
	defer env.clear()
	fs := flag.NewFlagSet("root "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	mode := fs.String("seal", "", "passphrase or shamir")
	out := fs.String("out", "", "seal file to write (must not exist)")
	from := fs.String("from", "", "root seal only: the plaintext root key file to seal")
	shares := fs.Int("shares", 5, "shamir: how many shares to make")
	threshold := fs.Int("threshold", 3, "shamir: how many shares open the root key")
	module := fs.String("pkcs11-module", "/usr/lib/softhsm/libsofthsm2.so", "pkcs11: the PKCS#11 module (the HSM vendor's library)")
	token := fs.String("pkcs11-token", "", "pkcs11: the token's label")
	argon := seal.DefaultArgon2()
	fs.Func("argon2-time", "passphrase: Argon2id passes (default 3)", func(s string) error { return parseUint32(s, &argon.Time) })
	fs.Func("argon2-memory-kib", "passphrase: Argon2id memory in KiB (default 65536)", func(s string) error { return parseUint32(s, &argon.MemoryKiB) })
	weak := fs.Bool("unsafe-weak-passphrase", false, "passphrase: accept a passphrase shorter than 12 characters and Argon2id below OWASP's minimum\n(19 MiB and 2 passes, or 46 MiB and 1); for tests only: such a seal can be opened by guessing")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	if *out == "" || (*mode != seal.ModePassphrase && *mode != seal.ModeShamir && *mode != seal.ModePKCS11) ||
		(cmd == "seal") != (*from != "") || (*mode == seal.ModePKCS11 && *token == "") {
		fmt.Fprint(stderr, rootUsage)
		return 2
	}
	if _, err := os.Stat(*out); !errors.Is(err, errNotExist) {
		fmt.Fprintf(stderr, "keyledger: %s exists; refusing to overwrite a seal file\n", *out)
		return 1
	}
	root := rootkey.Generate()
	if cmd == "seal" {
		var err error
		if root, err = rootkey.Load(*from); err != nil {
			fmt.Fprintf(stderr, "keyledger: %v\n", err)
			return 1
		}
	}
	var f *seal.File
	var printed []string
	var err error
	switch *mode {
	case seal.ModePassphrase:
		if !*weak {
			err = argon.CheckStrength() // before asking for a passphrase
		}
		var pass []byte
		if err == nil {
			pass, err = readPassphrase(env, true)
		}
		if err == nil {
			if *weak {
				fmt.Fprintln(stderr, "keyledger: WARNING: --unsafe-weak-passphrase: the seal's passphrase and Argon2id parameters are not checked; never use such a seal for real keys")
				f, err = seal.UnsafeNewPassphrase(root, pass, argon)
			} else {
				f, err = seal.NewPassphrase(root, pass, argon)
			}
			clear(pass)
		}
		if errors.Is(err, seal.ErrWeak) {
			err = fmt.Errorf("%v (--unsafe-weak-passphrase accepts it, for tests only)", err)
		}
	case seal.ModeShamir:
		f, printed, err = seal.NewShamir(root, *shares, *threshold)
	case seal.ModePKCS11:
		var t *hsm.Token
		if t, err = openToken(env, *module, *token); err == nil {
			var from *rootkey.Key
			if cmd == "seal" {
				from = &root
			}
			f, err = seal.NewPKCS11(t, *module, *token, from)
			t.Close()
		}
	}
	if err == nil {
		err = f.Save(*out)
	}
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	if *mode == seal.ModePKCS11 {
		fmt.Fprintf(stdout, "root key is a non-extractable key on token %q (label %s); seal file written to %s\n", *token, f.Versions[0].Label, *out)
	} else {
		fmt.Fprintf(stdout, "sealed root key written to %s (%s, root key fingerprint %s)\n", *out, *mode, root.Fingerprint())
	}
	if len(printed) > 0 {
		fmt.Fprintf(stdout, "\nUnseal shares — shown only this once. Give each to a different custodian; any %d of %d open the root key:\n\n", *threshold, *shares)
		for i, s := range printed {
			fmt.Fprintf(stdout, "  share %d: %s\n", i+1, s)
		}
		fmt.Fprintln(stdout)
	}
	if cmd == "seal" {
		fmt.Fprintf(stdout, "\nNow DESTROY the plaintext root key %s (e.g. shred -u %s) and every copy of it in backups:\n"+
			"while it exists, whoever reads it holds every key. Start with: keyledger serve --root-seal %s\n", *from, *from, *out)
	}
	return 0
}

var errNotExist = fs.ErrNotExist

func parseUint32(s string, v *uint32) error {
	var n uint64
	if _, err := fmt.Sscan(s, &n); err != nil || n == 0 || n > 1<<32-1 {
		return errors.New("need a positive integer")
	}
	*v = uint32(n)
	return nil
}

func rootRotate(cmd string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("root "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("url", "", "the deployment's endpoint (e.g. https://kms.example:8443)")
	region := fs.String("region", envOr("AWS_REGION", envOr("AWS_DEFAULT_REGION", "us-east-1")), "SigV4 region")
	caBundle := fs.String("ca-bundle", os.Getenv("AWS_CA_BUNDLE"), "PEM file of CAs to trust for https")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	if *endpoint == "" {
		fmt.Fprint(stderr, rootUsage)
		return 2
	}
	c := &rootclient.Client{Endpoint: *endpoint, Region: *region,
		Credentials: sigv4.Credentials{AccessKeyID: os.Getenv("AWS_ACCESS_KEY_ID"), Secret: os.Getenv("AWS_SECRET_ACCESS_KEY")}}
	var err error
	if c.HTTP, err = httpClient(*caBundle); err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 2
	}
	var st map[string]any
	if cmd == "rotate" {
		st, err = c.Rotate(context.Background())
	} else {
		st, err = c.Rotation(context.Background())
	}
	if err != nil {
		fmt.Fprintf(stderr, "keyledger: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "state=%v from=%v to=%v rewrapped=%v under_current=%v/%v root_versions=%v\n",
		st["state"], st["fromVersion"], st["toVersion"], st["rewrapped"], st["underCurrentVersion"], st["materials"], st["rootVersions"])
	return 0
}
