// Package timetravel answers "what was true on date D": a key's state,
// policy, grants and aliases as of a time, and who could decrypt with it
// then, by folding the ledger up to that time and evaluating the key policy,
// the identity policies and the grants in force then. It is pure: it reads
// records it is given and keeps nothing.
//
// The state as of T is the fold of the ledger's longest prefix whose events
// all happened at or before T: a state the ledger really had. (Event times
// are the writers' clocks: events of one group commit, or of instances
// whose clocks differ, need not be in time order, and picking events by
// time alone could fold a change without the one before it.) So a fold may
// start from a snapshot of the projections whose events all happened by T
// (Resume) and stop at the first event after T (ErrPassed): the answer is
// the full fold's, and its cost follows the distance from the snapshot,
// not the ledger's length.
package timetravel

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/projections/keystate"
	"github.com/keyledger/keyledger/projections/policy"
	"github.com/keyledger/keyledger/projections/resume"
)

// ErrPassed is what Fold returns for the first event after AsOf: the fold
// is complete and the caller stops reading the ledger.
var ErrPassed = errors.New("timetravel: past the time asked for")

// ErrImageTooLate means a snapshot holds events after the time asked for.
var ErrImageTooLate = errors.New("timetravel: the snapshot holds events after the time asked for")

// Folder folds records, in ledger order, up to a time.
type Folder struct {
	AsOf       time.Time
	state      *keystate.State
	principals string // the PrincipalsConfigured summary in force
	events     uint64
	next       uint64 // the position of the next event to fold
	passed     bool
	snapshot   *uint64 // the position of the last event the snapshot it started from covers
}

// NewFolder starts a fold from the ledger's first event.
func NewFolder(asOf time.Time) *Folder { return &Folder{AsOf: asOf, state: keystate.New()} }

// Resume starts a fold from a snapshot image of the projections (its key
// state, and the principals in force from its compliance aggregates); the
// caller folds the events from Next on. Every event in the image must have
// happened by asOf.
func Resume(asOf time.Time, im *resume.Image) (*Folder, error) {
	if im.Latest.IsZero() || im.Latest.After(asOf) {
		return nil, ErrImageTooLate // an image that does not say is no use either
	}
	last := im.Head.Count - 1
	return &Folder{AsOf: asOf, state: keystate.Restore(im.Keys), principals: im.Compliance.Principals,
		events: im.Head.Count, next: im.Head.Count, snapshot: &last}, nil
}

// Next is the position (event.Record.Pos) of the first event the fold
// still needs.
func (f *Folder) Next() uint64 { return f.next }

// Fold folds the next record, or returns ErrPassed (and folds nothing more)
// once one happened after AsOf.
func (f *Folder) Fold(r event.Record) error {
	if f.passed || r.Event.Time.After(f.AsOf) {
		f.passed = true
		return ErrPassed
	}
	f.events++
	f.next = r.Pos + 1
	if b, ok := r.Event.Body.(*event.PrincipalsConfigured); ok && !r.Event.Refused() {
		f.principals = b.Summary
	}
	f.state.Apply([]event.Record{r})
	return nil
}

// Access is one principal's way to decrypt.
type Access struct {
	Principal string `json:"principal"`
	Via       string `json:"via"`
}

// KeyView is a key as it was.
type KeyView struct {
	KeyID              string            `json:"keyId"`
	Arn                string            `json:"arn"`
	State              string            `json:"keyState"`
	Description        string            `json:"description,omitempty"`
	KeySpec            string            `json:"keySpec"`
	KeyUsage           string            `json:"keyUsage"`
	Origin             string            `json:"origin"`
	Created            time.Time         `json:"creationDate"`
	DeletionDate       *time.Time        `json:"deletionDate,omitempty"`
	RotationPeriodDays int               `json:"rotationPeriodInDays,omitempty"`
	CurrentMaterial    string            `json:"currentKeyMaterialId,omitempty"`
	Materials          int               `json:"keyMaterials"`
	Tags               map[string]string `json:"tags,omitempty"`
	Aliases            []string          `json:"aliases,omitempty"`
	Policy             json.RawMessage   `json:"policy"`
	Grants             []GrantView       `json:"grants,omitempty"`
}

// GrantView is a grant as it was.
type GrantView struct {
	GrantID     string   `json:"grantId"`
	Grantee     string   `json:"granteePrincipal"`
	Operations  []string `json:"operations"`
	Constrained bool     `json:"constrained,omitempty"`
}

// Answer is what the fold says about one key.
type Answer struct {
	AsOf         time.Time `json:"asOf"`
	EventsFolded uint64    `json:"eventsFolded"`
	// SnapshotIndex is the position of the last event of the snapshot the
	// fold started from (absent: it started from the first event).
	SnapshotIndex *uint64  `json:"snapshotIndex,omitempty"`
	Exists        bool     `json:"exists"`
	Deleted       bool     `json:"deleted,omitempty"`
	Key           *KeyView `json:"key,omitempty"`
	WhoCanDecrypt []Access `json:"whoCouldDecrypt,omitempty"`
}

// Describe answers for one key id, naming it in region ("": the region
// the ledger recorded the key in).
func (f *Folder) Describe(keyID, region string) Answer {
	ans := Answer{AsOf: f.AsOf, EventsFolded: f.events, SnapshotIndex: f.snapshot}
	k, ok := f.state.Key(keyID)
	if !ok {
		ans.Deleted = f.state.WasDeleted(keyID)
		return ans
	}
	ans.Exists = true
	if region == "" {
		region = k.Region
	}
	arn := "arn:aws:kms:" + region + ":" + k.Account + ":key/" + k.ID
	v := &KeyView{KeyID: k.ID, Arn: arn, State: string(k.State), Description: k.Description, KeySpec: string(k.Spec),
		KeyUsage: string(k.Usage), Origin: k.Origin, Created: k.Created, RotationPeriodDays: k.RotationPeriodDays,
		Materials: len(k.Materials), Tags: k.Tags, Policy: json.RawMessage(k.Policy)}
	if !json.Valid(v.Policy) {
		v.Policy = nil
	}
	if k.State == keystate.PendingDeletion {
		d := k.DeletionDate
		v.DeletionDate = &d
	}
	if k.HasMaterial() {
		v.CurrentMaterial = k.CurrentMaterial().ID
	}
	for _, a := range f.state.Aliases(k.Account, k.ID) {
		v.Aliases = append(v.Aliases, a.Name)
	}
	for _, g := range k.Grants {
		v.Grants = append(v.Grants, GrantView{GrantID: g.ID, Grantee: g.GranteePrincipal, Operations: g.Operations,
			Constrained: g.EncryptionContextEquals != nil || g.EncryptionContextSubset != nil})
	}
	slices.SortFunc(v.Grants, func(a, b GrantView) int { return strings.Compare(a.GrantID, b.GrantID) })
	ans.Key = v
	ans.WhoCanDecrypt = f.whoCanDecrypt(k, arn)
	return ans
}

type principalSummary struct {
	ARN      string            `json:"arn"`
	Policies []json.RawMessage `json:"policies"`
}

// whoCanDecrypt evaluates kms:Decrypt on the key for every principal in the
// configuration then in force (and "*" when the key policy opens it to
// anyone), with no request conditions met: what is allowed outright.
func (f *Folder) whoCanDecrypt(k keystate.Key, arn string) []Access {
	keyDoc, err := policy.Parse(k.Policy)
	if err != nil {
		return nil
	}
	var principals []principalSummary
	_ = json.Unmarshal([]byte(f.principals), &principals)
	var out []Access
	anyone := keyDoc.Evaluate(policy.Request{Principal: policy.Principal{ARN: "arn:aws:iam::000000000000:user/anyone", Account: "000000000000"},
		Action: "kms:Decrypt", Resource: arn})
	if anyone.Deny == nil && anyone.Allow != nil {
		out = append(out, Access{Principal: "*", Via: "key policy " + keyDoc.Label(anyone.Allow) + " allows any principal"})
	}
	for _, p := range principals {
		parts := strings.SplitN(p.ARN, ":", 6)
		if len(parts) != 6 {
			continue
		}
		req := policy.Request{Principal: policy.Principal{ARN: p.ARN, Account: parts[4]}, Action: "kms:Decrypt", Resource: arn}
		kr := keyDoc.Evaluate(req)
		var ir policy.Result
		var idDoc *policy.Document
		for _, raw := range p.Policies {
			d, err := policy.Parse(string(raw))
			if err != nil {
				continue
			}
			r := d.Evaluate(req)
			if r.Deny != nil {
				ir, idDoc = policy.Result{Deny: r.Deny}, d
				break
			}
			if r.Allow != nil && ir.Allow == nil {
				ir.Allow, idDoc = r.Allow, d
			}
		}
		if kr.Deny != nil || ir.Deny != nil {
			continue
		}
		same := parts[4] == k.Account
		switch {
		case kr.Allow != nil && same:
			out = append(out, Access{Principal: p.ARN, Via: "key policy " + keyDoc.Label(kr.Allow)})
			continue
		case (kr.Allow != nil || kr.AllowAccount != nil) && ir.Allow != nil:
			st := kr.Allow
			if st == nil {
				st = kr.AllowAccount
			}
			out = append(out, Access{Principal: p.ARN, Via: "key policy " + keyDoc.Label(st) + " and identity policy " + idDoc.Label(ir.Allow)})
			continue
		}
		for _, g := range k.Grants {
			// A grant to the account root counts only with an identity
			// policy allowing Decrypt on the key, as the service decides.
			toRoot := g.GranteePrincipal == "arn:aws:iam::"+parts[4]+":root" && ir.Allow != nil
			if (g.GranteePrincipal == p.ARN || toRoot) && slices.Contains(g.Operations, "Decrypt") {
				via := "grant " + g.ID
				if toRoot {
					via += " to the account root and identity policy " + idDoc.Label(ir.Allow)
				}
				if g.EncryptionContextEquals != nil || g.EncryptionContextSubset != nil {
					via += " (with encryption context constraints)"
				}
				out = append(out, Access{Principal: p.ARN, Via: via})
				break
			}
		}
	}
	return out
}
