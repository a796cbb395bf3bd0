// Package seed reads keyledger seed files — keys with fixed ids, their
// settings, aliases and, for test fixtures, their key material, declared in
// YAML — and seeds them through the application service (keyservice.Seed),
// like any other change: at start (serve --seed) or on a running server
// (POST /seed, served by package seedapi; Client here is keyledger seed's
// side of it).
//
// File format (YAML):
//
//	account: "111122223333"      # optional: the keys' account (default: the caller's, or serve --account)
//	keys:
//	  - keyId: 6f1c3a0e-0d4b-4c1e-9a53-2f0e1d7c9b01   # required, a UUID
//	    description: fixtures
//	    keySpec: SYMMETRIC_DEFAULT   # any KMS key spec; default SYMMETRIC_DEFAULT
//	    keyUsage: ENCRYPT_DECRYPT    # default: the spec's
//	    origin: AWS_KMS              # or EXTERNAL; default AWS_KMS
//	    enabled: true
//	    policy: {...}                # a key policy, as YAML or as a JSON string
//	    tags: {team: payments}
//	    aliases: [alias/fixtures]
//	    rotation: {enabled: true, periodInDays: 365}
//	    material: <base64>           # EXTERNAL: the key material; AWS_KMS: development mode only
//
// Key material is the raw key for symmetric (32 bytes) and HMAC keys, the
// PKCS#8 DER private key for asymmetric ones, as ImportKeyMaterial takes
// it. Unknown fields are refused, so a typo is not silently ignored.
//
// Seed material never reaches the ledger, a log or an error: it travels to
// keyservice in a secret.Bytes and is wrapped under the root key there.
package seed

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/keyledger/keyledger/crypto/secret"
	"github.com/keyledger/keyledger/gateway/keyservice"
)

// MaxFileSize bounds a seed file (the request body limit of the gateway is
// larger than any sensible seed).
const MaxFileSize = 192 << 10

type fileFormat struct {
	Account string    `yaml:"account"`
	Keys    []keyYAML `yaml:"keys"`
}

type keyYAML struct {
	KeyID       string            `yaml:"keyId"`
	Description *string           `yaml:"description"`
	KeySpec     string            `yaml:"keySpec"`
	KeyUsage    string            `yaml:"keyUsage"`
	Origin      string            `yaml:"origin"`
	Enabled     *bool             `yaml:"enabled"`
	Policy      yaml.Node         `yaml:"policy"`
	Tags        map[string]string `yaml:"tags"`
	Aliases     []string          `yaml:"aliases"`
	Rotation    *struct {
		Enabled      bool `yaml:"enabled"`
		PeriodInDays int  `yaml:"periodInDays"`
	} `yaml:"rotation"`
	Material string `yaml:"material"`
}

// Parse reads a seed file. The SeedInput it returns holds the file's key
// material; the caller clears it (Clear) when done. Account, when the file
// names none, is left empty for the service to fill in.
func Parse(data []byte) (*keyservice.SeedInput, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("seed: the file is %d bytes; at most %d", len(data), MaxFileSize)
	}
	var f fileFormat
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("seed: the file is empty")
		}
		return nil, fmt.Errorf("seed: %s", redactYAML(err))
	}
	if len(f.Keys) == 0 {
		return nil, errors.New("seed: the file declares no keys")
	}
	if f.Account != "" && (len(f.Account) != 12 || strings.Trim(f.Account, "0123456789") != "") {
		return nil, fmt.Errorf("seed: account %q is not 12 digits", f.Account)
	}
	sum := sha256.Sum256(data)
	in := &keyservice.SeedInput{Account: f.Account, FileHash: hex.EncodeToString(sum[:])}
	for i, k := range f.Keys {
		entry := fmt.Sprintf("keys[%d]", i)
		if len(k.Aliases) > 0 {
			entry += " (" + k.Aliases[0] + ")"
		}
		sk := keyservice.SeedKey{Entry: entry, KeyID: k.KeyID, Description: k.Description, KeySpec: k.KeySpec,
			KeyUsage: k.KeyUsage, Origin: k.Origin, Tags: k.Tags, Enabled: k.Enabled, Aliases: k.Aliases}
		if sk.KeyID == "" {
			Clear(in)
			return nil, fmt.Errorf("seed: %s has no keyId: a seed key has a fixed id (a UUID)", entry)
		}
		pol, err := policyText(&k.Policy)
		if err != nil {
			Clear(in)
			return nil, fmt.Errorf("seed: %s: policy: %v", entry, err)
		}
		sk.Policy = pol
		if r := k.Rotation; r != nil {
			sk.Rotation = &keyservice.SeedRotation{Enabled: r.Enabled, PeriodDays: r.PeriodInDays}
		}
		if k.Material != "" {
			raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(k.Material), ""))
			if err != nil || len(raw) == 0 {
				Clear(in)
				return nil, fmt.Errorf("seed: %s: material is not base64", entry) // never echo it
			}
			sk.Material = secret.New(raw)
		}
		in.Keys = append(in.Keys, sk)
	}
	return in, nil
}

// Clear wipes the key material a parsed seed holds (best effort).
func Clear(in *keyservice.SeedInput) {
	if in == nil {
		return
	}
	for _, k := range in.Keys {
		k.Material.Clear()
	}
}

// policyText turns a policy given as YAML into JSON text; a string is taken
// as the JSON text itself.
func policyText(n *yaml.Node) (*string, error) {
	switch n.Kind {
	case 0:
		return nil, nil
	case yaml.ScalarNode:
		s := n.Value
		return &s, nil
	case yaml.MappingNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, err
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		s := string(b)
		return &s, nil
	}
	return nil, errors.New("want a mapping (the policy document) or a string of JSON")
}

// redactYAML keeps a YAML error's position and kind but not the values it
// quotes: a misplaced line could be key material.
func redactYAML(err error) string {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var lines []string
		for _, e := range te.Errors {
			if i := strings.Index(e, "`"); i > 0 {
				e = e[:i] + "(value not shown)"
			}
			lines = append(lines, e)
		}
		return strings.Join(lines, "; ")
	}
	return msg
}
