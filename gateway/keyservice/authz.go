package keyservice

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"

	"github.com/keyledger/keyledger/projections/keystate"
	"github.com/keyledger/keyledger/projections/policy"
)

// Authorization follows AWS's evaluation for KMS:
//
//  1. An explicit Deny in the key policy or in the caller's identity
//     policies refuses the request.
//  2. Otherwise the key policy must allow: a statement naming the caller
//     allows it outright (within the key's account); a statement naming the
//     caller's account root delegates to the account's identity policies,
//     which must then allow too. A caller from another account always needs
//     both the key policy and its own identity policies.
//  3. A grant on the key for the caller, naming the operation and whose
//     constraints the request meets, allows on its own. A grant to the
//     caller's account root delegates to the account, as a key policy
//     statement naming the root does: the caller's identity policies must
//     allow the operation on the key too.
//
// Every refusal is AccessDeniedException with AWS's message shape, recorded
// with the statement that denied or the fact that none allowed.

// policyCache keeps parsed key policies by key id, re-parsing only when a
// key's policy text changes.
type policyCache struct {
	mu   sync.RWMutex
	docs map[string]cachedPolicy
}

type cachedPolicy struct {
	text string
	doc  *policy.Document
}

func (pc *policyCache) get(k keystate.Key) *policy.Document {
	pc.mu.RLock()
	c, ok := pc.docs[k.ID]
	pc.mu.RUnlock()
	if ok && c.text == k.Policy {
		return c.doc
	}
	doc, err := policy.Parse(k.Policy)
	if err != nil {
		doc = &policy.Document{} // fail closed: an unreadable policy allows nothing
	}
	pc.mu.Lock()
	if pc.docs == nil {
		pc.docs = map[string]cachedPolicy{}
	}
	pc.docs[k.ID] = cachedPolicy{text: k.Policy, doc: doc}
	pc.mu.Unlock()
	return doc
}

// request describes one authorization question.
type request struct {
	action string
	key    *keystate.Key // nil for operations on no key
	ref    string        // the KeyId as the caller wrote it (for kms:RequestAlias)
	encCtx map[string]string
	extra  map[string]string // further condition keys (lower-cased names)
	// kms:EncryptionAlgorithm, kms:SigningAlgorithm and kms:MessageType,
	// when not "": fields rather than extras, so that Encrypt, Decrypt and
	// Sign make no map per request
	encryptionAlgorithm, signingAlgorithm, messageType string
	multi                                              map[string][]string // further multi-valued condition keys
}

func accessDenied(c Caller, action, resource, because, reason string) *Error {
	return &Error{Code: CodeAccessDenied, Reason: reason, Message: fmt.Sprintf(
		"User: %s is not authorized to perform: %s on resource: %s %s", c.PrincipalARN, action, resource, because)}
}

// authorize decides a request on a key.
func (s *Service) authorize(c Caller, r request) error {
	_, err := s.decide(c, r)
	return err
}

// decide decides a request on a key and, when only a grant allows it,
// returns that grant.
func (s *Service) decide(c Caller, r request) (*keystate.Grant, error) {
	k := *r.key
	resource := s.arnOf(k)
	preq := policy.Request{Principal: policy.Principal{ARN: c.PrincipalARN, Account: c.Account},
		Action: r.action, Resource: resource, Context: s.conditions(c, r)}
	keyDoc := s.policies.get(k)
	kr := keyDoc.Evaluate(preq)
	if kr.Deny != nil {
		return nil, accessDenied(c, r.action, resource, "with an explicit deny in a resource-based policy",
			"denied by key policy "+keyDoc.Label(kr.Deny))
	}
	ir, irDoc := evaluateIdentity(c, preq)
	if ir.Deny != nil {
		return nil, accessDenied(c, r.action, resource, "with an explicit deny in an identity-based policy",
			"denied by identity policy "+irDoc.Label(ir.Deny))
	}
	sameAccount := c.Account == k.Account
	switch {
	case kr.Allow != nil && sameAccount:
		return nil, nil
	case (kr.Allow != nil || kr.AllowAccount != nil) && ir.Allow != nil:
		return nil, nil
	}
	if g := s.grantFor(c, k, r, ir.Allow != nil); g != nil {
		return g, nil
	}
	if g := s.grantFor(c, k, r, true); g != nil { // a grant to the account, which no identity policy uses
		return nil, accessDenied(c, r.action, resource, "because no identity-based policy allows the "+r.action+" action",
			"grant "+g.ID+" names the account root, and no identity policy allows it")
	}
	if kr.Allow == nil && kr.AllowAccount == nil {
		return nil, accessDenied(c, r.action, resource, "because no resource-based policy allows the "+r.action+" action",
			"no key policy statement allows it")
	}
	return nil, accessDenied(c, r.action, resource, "because no identity-based policy allows the "+r.action+" action",
		"the key policy delegates to the account, and no identity policy allows it")
}

// authorizeIdentity decides a request on no key (CreateKey, ListKeys, …)
// or on an alias: identity policies alone.
func (s *Service) authorizeIdentity(c Caller, action, resource string) error {
	return s.authorizeIdentityWith(c, action, resource, nil)
}

// authorizeIdentityWith is authorizeIdentity with further condition keys
// (lower-cased names), such as CreateKey's kms:MultiRegion.
func (s *Service) authorizeIdentityWith(c Caller, action, resource string, extra map[string]string) error {
	preq := policy.Request{Principal: policy.Principal{ARN: c.PrincipalARN, Account: c.Account},
		Action: action, Resource: resource, Context: s.conditions(c, request{action: action, extra: extra})}
	ir, doc := evaluateIdentity(c, preq)
	switch {
	case ir.Deny != nil:
		return accessDenied(c, action, resource, "with an explicit deny in an identity-based policy", "denied by identity policy "+doc.Label(ir.Deny))
	case ir.Allow == nil:
		return accessDenied(c, action, resource, "because no identity-based policy allows the "+action+" action", "no identity policy allows it")
	}
	return nil
}

// evaluateIdentity merges the caller's identity policies: the first deny,
// else the first allow. It returns the document that decided.
func evaluateIdentity(c Caller, req policy.Request) (policy.Result, *policy.Document) {
	var out policy.Result
	var allowDoc *policy.Document
	for _, d := range c.Identity {
		r := d.Evaluate(req)
		if r.Deny != nil {
			return policy.Result{Deny: r.Deny}, d
		}
		if r.Allow != nil && out.Allow == nil {
			out.Allow, allowDoc = r.Allow, d
		}
	}
	return out, allowDoc
}

// conditions is the request context a policy's conditions read, computed
// lazily per key so the costly ones cost only when a policy uses them.
func (s *Service) conditions(c Caller, r request) func(string) []string {
	return func(key string) []string {
		one := func(v string) []string {
			if v == "" {
				return nil
			}
			return []string{v}
		}
		switch key {
		case "aws:principalarn":
			return one(c.PrincipalARN)
		case "aws:principalaccount", "kms:calleraccount":
			return one(c.Account)
		case "aws:sourceip":
			return one(c.SourceIP)
		case "aws:currenttime":
			return one(policy.FormatTime(s.clock.Now()))
		case "aws:securetransport":
			return one("false")
		case "kms:encryptioncontextkeys":
			return sortedKeys(r.encCtx)
		case "kms:requestalias":
			if name, ok := aliasIn(r.ref); ok {
				return []string{name}
			}
			return nil
		case "kms:grantisforawsresource":
			return one("false")
		}
		switch {
		case key == "kms:encryptionalgorithm" && r.encryptionAlgorithm != "":
			return one(r.encryptionAlgorithm)
		case key == "kms:signingalgorithm" && r.signingAlgorithm != "":
			return one(r.signingAlgorithm)
		case key == "kms:messagetype" && r.messageType != "":
			return one(r.messageType)
		}
		if v, ok := r.extra[key]; ok {
			return one(v)
		}
		if v, ok := r.multi[key]; ok {
			return v
		}
		if ctxKey, ok := strings.CutPrefix(key, "kms:encryptioncontext:"); ok {
			for k, v := range r.encCtx {
				if strings.ToLower(k) == ctxKey {
					return []string{v}
				}
			}
			return nil
		}
		if r.key == nil {
			return nil
		}
		k := r.key
		switch key {
		case "kms:keyspec", "kms:customermasterkeyspec":
			return one(string(k.Spec))
		case "kms:keyusage", "kms:customermasterkeyusage":
			return one(string(k.Usage))
		case "kms:keyorigin":
			return one(k.Origin)
		case "kms:multiregion":
			return one(strconv.FormatBool(k.MultiRegion))
		case "kms:multiregionkeytype":
			switch {
			case k.IsPrimary():
				return one("PRIMARY")
			case k.IsReplica():
				return one("REPLICA")
			}
			return nil
		case "kms:resourcealiases":
			var names []string
			for _, a := range s.state.Aliases(k.Account, k.ID) {
				names = append(names, a.Name)
			}
			return names
		}
		if tag, ok := strings.CutPrefix(key, "aws:resourcetag/"); ok {
			for t, v := range k.Tags {
				if strings.ToLower(t) == tag {
					return []string{v}
				}
			}
		}
		return nil
	}
}

// aliasIn reports the alias name a KeyId used, if it used one.
func aliasIn(ref string) (string, bool) {
	if i := strings.Index(ref, "alias/"); i >= 0 && (i == 0 || strings.HasPrefix(ref, "arn:")) {
		return ref[i:], true
	}
	return "", false
}

// grantFor returns a live grant on k that lets the caller do r, if any. A
// grant to the caller itself allows on its own. A grant to the caller's
// account (its root) is read as a key policy statement naming that root
// is: it delegates to the account, whose identity policies must also allow
// the operation on the key (identityAllows).
func (s *Service) grantFor(c Caller, k keystate.Key, r request, identityAllows bool) *keystate.Grant {
	op, ok := strings.CutPrefix(r.action, "kms:")
	if !ok {
		return nil
	}
	for _, g := range k.Grants {
		switch g.GranteePrincipal {
		case c.PrincipalARN:
		case accountRoot(c.Account):
			if !identityAllows {
				continue
			}
		default:
			continue
		}
		if !contains(g.Operations, op) {
			continue
		}
		if takesContext[op] && !constraintsMet(g, r.encCtx) {
			continue
		}
		return &g
	}
	return nil
}

// takesContext lists the grant operations that accept an encryption
// context; grant constraints apply to them only, as AWS documents.
var takesContext = map[string]bool{
	"Encrypt": true, "Decrypt": true, "ReEncryptFrom": true, "ReEncryptTo": true, "GenerateDataKey": true,
	"GenerateDataKeyWithoutPlaintext": true, "GenerateDataKeyPair": true, "GenerateDataKeyPairWithoutPlaintext": true,
}

func accountRoot(account string) string { return "arn:aws:iam::" + account + ":root" }

func constraintsMet(g keystate.Grant, ctx map[string]string) bool {
	if g.EncryptionContextEquals != nil && !maps.Equal(g.EncryptionContextEquals, ctx) {
		return false
	}
	for k, v := range g.EncryptionContextSubset {
		if got, ok := ctx[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// grantToken makes a new grant token and the hash the ledger records.
func grantToken(grantID string) (token, hash string) {
	token = "kl1." + grantID + "." + base64.RawURLEncoding.EncodeToString(randomBytes(32))
	return token, tokenHash(token)
}

func tokenHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// use resolves the key a request names and authorizes the caller's action
// on it. The key is returned whenever it was found, so a refusal can name it
// in the audit record (never in the answer).
func (s *Service) use(c Caller, ref string, allowAlias bool, r request) (keystate.Key, error) {
	k, err := s.resolve(c, ref, allowAlias)
	if err != nil {
		return k, err
	}
	r.key, r.ref = &k, ref
	return k, s.authorize(c, r)
}

// AuthorizeAudit decides a request to keyledger's own audit API (actions
// "keyledger:ReadAudit", "keyledger:SubscribeAudit", …) on a resource (a key
// ARN, or "*"): identity policies alone, as for any non-KMS resource.
func (s *Service) AuthorizeAudit(c Caller, action, resource string) error {
	return s.authorizeIdentity(c, action, resource)
}
