package policy

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Principal is who makes a request.
type Principal struct {
	ARN     string // arn:aws:iam::111122223333:user/alice
	Account string
}

// Request is what a statement is evaluated against.
type Request struct {
	Principal Principal
	Action    string // "kms:Encrypt"
	Resource  string // the key ARN, or "*" for operations on no resource
	// Context returns the values of a condition key (lower-cased name) in
	// this request; nil when the request has none. A key may have several
	// values (kms:EncryptionContextKeys). It is called only for keys that a
	// matching statement's conditions use, so costly keys cost only then.
	Context func(key string) []string
}

// Label names a statement of d for people: its Sid, or its position.
func (d *Document) Label(st *Statement) string {
	if st.Sid != "" {
		return "statement " + strconv.Quote(st.Sid)
	}
	for i := range d.Statements {
		if &d.Statements[i] == st {
			return "statement " + strconv.Itoa(i+1)
		}
	}
	return "a statement"
}

// Result is what one document says about a request.
type Result struct {
	// Deny is the first statement that explicitly denies, if any.
	Deny *Statement
	// Allow is a statement that allows the principal itself (or, in an
	// identity policy, the holder of the policy).
	Allow *Statement
	// AllowAccount is a statement that allows the principal's whole account
	// (Principal "arn:aws:iam::ACCOUNT:root"): in a key policy this
	// delegates the decision to the account's identity policies.
	AllowAccount *Statement
}

type principalMatch int

const (
	noMatch principalMatch = iota
	matchPrincipal
	matchAccount
)

// Evaluate applies every statement of d to req.
func (d *Document) Evaluate(req Request) Result {
	var r Result
	for i := range d.Statements {
		st := &d.Statements[i]
		pm := st.principalMatch(req.Principal)
		if pm == noMatch || !st.actionMatch(req.Action) || !st.resourceMatch(req.Resource) || !st.conditionsHold(req) {
			continue
		}
		switch {
		case st.Effect == Deny:
			if r.Deny == nil {
				r.Deny = st
			}
		case pm == matchPrincipal:
			if r.Allow == nil {
				r.Allow = st
			}
		default:
			if r.AllowAccount == nil {
				r.AllowAccount = st
			}
		}
	}
	return r
}

func (st *Statement) principalMatch(p Principal) principalMatch {
	switch {
	case st.Principal == nil && st.NotPrincipal == nil:
		return matchPrincipal // an identity policy applies to whoever holds it
	case st.Principal != nil:
		return st.Principal.match(p)
	default:
		if st.NotPrincipal.match(p) == noMatch {
			return matchPrincipal
		}
		return noMatch
	}
}

func (ps *Principals) match(p Principal) principalMatch {
	if ps.Any {
		return matchPrincipal
	}
	best := noMatch
	for _, a := range ps.AWS {
		switch {
		case a == p.ARN:
			return matchPrincipal
		case a == p.Account || a == "arn:aws:iam::"+p.Account+":root":
			best = matchAccount
		}
	}
	return best
}

// MatchesAction reports whether the statement's Action (or NotAction) covers action.
func (st *Statement) MatchesAction(action string) bool { return st.actionMatch(action) }

func (st *Statement) actionMatch(action string) bool {
	if st.Action != nil {
		return anyGlob(st.Action, action, true)
	}
	return !anyGlob(st.NotAction, action, true)
}

func (st *Statement) resourceMatch(resource string) bool {
	if st.Resource != nil {
		return anyGlob(st.Resource, resource, false)
	}
	return !anyGlob(st.NotResource, resource, false)
}

func anyGlob(patterns []string, s string, fold bool) bool {
	for _, p := range patterns {
		if fold {
			p, s = strings.ToLower(p), strings.ToLower(s)
		}
		if glob(p, s) {
			return true
		}
	}
	return false
}

// glob matches * (any run, also empty) and ? (one character).
func glob(pattern, s string) bool {
	px, sx := 0, 0
	nextPx, nextSx := -1, -1
	for px < len(pattern) || sx < len(s) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				nextPx, nextSx = px, sx+1
				px++
				continue
			case '?':
				if sx < len(s) {
					px++
					sx++
					continue
				}
			default:
				if sx < len(s) && s[sx] == c {
					px++
					sx++
					continue
				}
			}
		}
		if nextSx > 0 && nextSx <= len(s) {
			px, sx = nextPx, nextSx
			continue
		}
		return false
	}
	return true
}

func (st *Statement) conditionsHold(req Request) bool {
	for _, c := range st.Conditions {
		var values []string
		if req.Context != nil {
			values = req.Context(c.Key)
		}
		if !c.holds(values) {
			return false
		}
	}
	return true
}

// negated operators hold when the key is absent, as AWS evaluates them.
func negated(op string) bool {
	return strings.Contains(op, "Not")
}

func (c Condition) holds(values []string) bool {
	if c.Operator == "Null" {
		absent := len(values) == 0
		return (c.Values[0] == "true") == absent
	}
	if len(values) == 0 {
		switch {
		case c.IfExists, c.Qualifier == "ForAllValues":
			return true
		case c.Qualifier == "ForAnyValue":
			return false
		}
		return negated(c.Operator)
	}
	switch c.Qualifier {
	case "ForAllValues":
		for _, v := range values {
			if !c.matchOne(v) {
				return false
			}
		}
		return true
	case "ForAnyValue":
		for _, v := range values {
			if c.matchOne(v) {
				return true
			}
		}
		return false
	}
	// Single-valued use: every request value must satisfy the operator.
	for _, v := range values {
		if !c.matchOne(v) {
			return false
		}
	}
	return true
}

// matchOne tests one request value against the condition's values: a
// positive operator holds if any value matches, a negated one if none does.
func (c Condition) matchOne(v string) bool {
	pos := strings.Replace(c.Operator, "Not", "", 1) // StringNotEquals → StringEquals, NotIpAddress → IpAddress
	any := false
	for _, want := range c.Values {
		if compare(pos, v, want) {
			any = true
			break
		}
	}
	if negated(c.Operator) {
		return !any
	}
	return any
}

func compare(op, got, want string) bool {
	switch op {
	case "StringEquals", "ArnEquals", "BinaryEquals":
		return got == want
	case "StringEqualsIgnoreCase":
		return strings.EqualFold(got, want)
	case "StringLike", "ArnLike":
		return glob(want, got)
	case "Bool":
		return strings.EqualFold(got, want)
	case "IpAddress":
		addr, err := netip.ParseAddr(got)
		if err != nil {
			return false
		}
		if pfx, err := netip.ParsePrefix(want); err == nil {
			return pfx.Contains(addr.Unmap())
		}
		w, err := netip.ParseAddr(want)
		return err == nil && w == addr.Unmap()
	}
	if strings.HasPrefix(op, "Numeric") {
		g, err1 := strconv.ParseFloat(got, 64)
		w, err2 := strconv.ParseFloat(want, 64)
		return err1 == nil && err2 == nil && order(op, "Numeric", cmp3(g, w))
	}
	if strings.HasPrefix(op, "Date") {
		g, ok1 := parseDate(got)
		w, ok2 := parseDate(want)
		return ok1 && ok2 && order(op, "Date", g.Compare(w))
	}
	return false
}

func cmp3(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func order(op, prefix string, c int) bool {
	switch strings.TrimPrefix(op, prefix) {
	case "Equals":
		return c == 0
	case "LessThan":
		return c < 0
	case "LessThanEquals":
		return c <= 0
	case "GreaterThan":
		return c > 0
	case "GreaterThanEquals":
		return c >= 0
	}
	return false
}

// FormatTime renders a time the way aws:CurrentTime is compared.
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }
