// Package principals is keyledger's directory of identities: accounts, and
// IAM-style users and roles with access keys, secrets and identity
// policies, loaded from a JSON file given at start.
//
// File format (JSON):
//
//	{
//	  "accounts": {
//	    "111122223333": {
//	      "users": {
//	        "admin": {
//	          "accessKeys": [{"id": "AKIA…", "secret": "…"}],
//	          "policies": [{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}]
//	        }
//	      },
//	      "roles": { "app": { "accessKeys": [...], "policies": [...] } },
//	      "quotas": { "cryptographic-symmetric": 20000, "CreateKey": 10 }
//	    }
//	  }
//	}
//
// Secrets live only in secret.Bytes. Summary describes the directory
// without any secret, for the ledger. A Directory is immutable and safe for
// concurrent use.
package principals

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"slices"
	"strings"

	"github.com/keyledger/keyledger/crypto/secret"
	"github.com/keyledger/keyledger/gateway/throttle"
	"github.com/keyledger/keyledger/projections/policy"
)

// Principal is one user or role.
type Principal struct {
	ARN      string
	Account  string
	Name     string
	Kind     string // "user" or "role"
	Policies []*policy.Document
	policies []json.RawMessage
	keyIDs   []string
}

type credential struct {
	principal *Principal
	secret    secret.Bytes
}

// Directory is the set of configured principals.
type Directory struct {
	byKey    map[string]credential
	byARN    map[string]*Principal
	accounts map[string]bool
	quotas   map[string]map[string]float64 // account → family → requests per second
}

type fileFormat struct {
	Accounts map[string]struct {
		Users  map[string]entity  `json:"users"`
		Roles  map[string]entity  `json:"roles"`
		Quotas map[string]float64 `json:"quotas"`
	} `json:"accounts"`
}

type entity struct {
	AccessKeys []struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	} `json:"accessKeys"`
	Policies []json.RawMessage `json:"policies"`
}

// Load reads a principals file.
func Load(path string) (*Directory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	defer clear(data)
	d, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

// Parse reads a principals document.
func Parse(data []byte) (*Directory, error) {
	var f fileFormat
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("principals: not valid JSON: %v", err)
	}
	d := &Directory{byKey: map[string]credential{}, byARN: map[string]*Principal{}, accounts: map[string]bool{},
		quotas: map[string]map[string]float64{}}
	for acct, a := range f.Accounts {
		if len(acct) != 12 || strings.Trim(acct, "0123456789") != "" {
			return nil, fmt.Errorf("principals: account id %q is not 12 digits", acct)
		}
		d.accounts[acct] = true
		for family, q := range a.Quotas {
			if !throttle.IsFamily(family) || q < 0 {
				return nil, fmt.Errorf("principals: account %s: quota %q: want a known family (e.g. %q, \"CreateKey\") and a rate ≥ 0", acct, family, throttle.Symmetric)
			}
		}
		if len(a.Quotas) > 0 {
			d.quotas[acct] = a.Quotas
		}
		for kind, group := range map[string]map[string]entity{"user": a.Users, "role": a.Roles} {
			for name, e := range group {
				if name == "" || strings.ContainsAny(name, " :*") {
					return nil, fmt.Errorf("principals: %s name %q is not valid", kind, name)
				}
				p := &Principal{ARN: fmt.Sprintf("arn:aws:iam::%s:%s/%s", acct, kind, name), Account: acct, Name: name, Kind: kind}
				for i, raw := range e.Policies {
					doc, err := policy.Parse(string(raw))
					if err != nil {
						return nil, fmt.Errorf("principals: %s policy %d: %v", p.ARN, i+1, err)
					}
					p.Policies = append(p.Policies, doc)
					p.policies = append(p.policies, raw)
				}
				for _, k := range e.AccessKeys {
					if len(k.ID) < 16 || len(k.Secret) < 16 {
						return nil, fmt.Errorf("principals: %s has an access key id or secret shorter than 16 characters", p.ARN)
					}
					if _, dup := d.byKey[k.ID]; dup {
						return nil, fmt.Errorf("principals: access key id %s is used twice", k.ID)
					}
					d.byKey[k.ID] = credential{principal: p, secret: secret.New([]byte(k.Secret))}
					p.keyIDs = append(p.keyIDs, k.ID)
				}
				slices.Sort(p.keyIDs)
				d.byARN[p.ARN] = p
			}
		}
	}
	if len(d.byKey) == 0 {
		return nil, fmt.Errorf("principals: no access keys configured")
	}
	return d, nil
}

// Lookup finds the principal and secret of an access key id.
func (d *Directory) Lookup(accessKeyID string) (*Principal, secret.Bytes, bool) {
	c, ok := d.byKey[accessKeyID]
	return c.principal, c.secret, ok
}

// Exists reports whether a principal ARN names a configured principal, or
// an account root of a configured account.
func (d *Directory) Exists(arn string) bool {
	if _, ok := d.byARN[arn]; ok {
		return true
	}
	if acct, ok := strings.CutPrefix(arn, "arn:aws:iam::"); ok {
		if id, ok := strings.CutSuffix(acct, ":root"); ok {
			return d.accounts[id]
		}
	}
	return d.accounts[arn]
}

// Users returns the configured users (not roles), sorted by ARN.
func (d *Directory) Users() []*Principal {
	var out []*Principal
	for _, p := range d.byARN {
		if p.Kind == "user" {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *Principal) int { return strings.Compare(a.ARN, b.ARN) })
	return out
}

// AccessKeyIDs returns the principal's access key ids, sorted; Lookup gives
// each one's secret.
func (p *Principal) AccessKeyIDs() []string { return slices.Clone(p.keyIDs) }

// Quotas returns the request quotas configured for an account (family →
// requests per second), or nil. The caller must not modify the map.
func (d *Directory) Quotas(account string) map[string]float64 { return d.quotas[account] }

// HasAccount reports whether an account is configured.
func (d *Directory) HasAccount(id string) bool { return d.accounts[id] }

// Summary describes the directory without secrets, in a stable form, and
// its SHA-256: what the ledger records when the configuration changes.
func (d *Directory) Summary() (text, hash string) {
	type sp struct {
		ARN          string            `json:"arn"`
		AccessKeyIDs []string          `json:"accessKeyIds"`
		Policies     []json.RawMessage `json:"policies,omitempty"`
	}
	var out []sp
	for _, p := range d.byARN {
		var pols []json.RawMessage
		for _, raw := range p.policies {
			var compact bytes.Buffer
			if err := json.Compact(&compact, raw); err == nil {
				pols = append(pols, json.RawMessage(compact.String()))
			}
		}
		out = append(out, sp{ARN: p.ARN, AccessKeyIDs: p.keyIDs, Policies: pols})
	}
	slices.SortFunc(out, func(a, b sp) int { return strings.Compare(a.ARN, b.ARN) })
	b, _ := json.Marshal(out)
	h := sha256.Sum256(b)
	return string(b), hex.EncodeToString(h[:])
}

// Admin is a new principals document for one account with an "admin" user
// allowed kms:* and keyledger:*, held in memory until Save writes it: a
// first start creates it, and saves it only once the server started.
type Admin struct {
	Dir         *Directory
	AccessKeyID string
	SecretKey   string
	doc         []byte
}

// NewAdmin makes the admin of a new deployment with a random access key.
func NewAdmin(account string) (*Admin, error) {
	id := "AKIA" + randomString(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
	secretKey := randomString(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
	doc := map[string]any{"accounts": map[string]any{account: map[string]any{"users": map[string]any{"admin": map[string]any{
		"accessKeys": []map[string]string{{"id": id, "secret": secretKey}},
		"policies": []any{map[string]any{"Version": "2012-10-17", "Statement": []any{
			map[string]any{"Sid": "KeyledgerAdmin", "Effect": "Allow", "Action": []string{"kms:*", "keyledger:*"}, "Resource": "*"}}}},
	}}}}}
	data, _ := json.MarshalIndent(doc, "", "  ")
	dir, err := Parse(data)
	if err != nil {
		return nil, err
	}
	return &Admin{Dir: dir, AccessKeyID: id, SecretKey: secretKey, doc: append(data, '\n')}, nil
}

// Save writes the document to a new file (mode 0600) and syncs it; it
// refuses to replace an existing file.
func (a *Admin) Save(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(a.doc); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	for i := range b {
		x, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			panic(err)
		}
		b[i] = alphabet[x.Int64()]
	}
	return string(b)
}
