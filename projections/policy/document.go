package policy

import (
	"encoding/json"

	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// MaxSize is the largest policy document accepted, in bytes (AWS's
// key-policy limit).
const MaxSize = 32 * 1024

// Effect is Allow or Deny.
type Effect string

const (
	Allow Effect = "Allow"
	Deny  Effect = "Deny"
)

// Document is a parsed policy.
type Document struct {
	Version    string
	ID         string
	Statements []Statement
}

// Statement is one policy statement.
type Statement struct {
	Sid          string
	Effect       Effect
	Principal    *Principals // nil when absent (identity policies)
	NotPrincipal *Principals
	Action       []string // nil when absent
	NotAction    []string
	Resource     []string
	NotResource  []string
	Conditions   []Condition
}

// Principals is a Principal element: "*" or {"AWS": [...], "Service": [...]}.
type Principals struct {
	Any     bool
	AWS     []string
	Service []string
}

// Condition is one (operator, key, values) test.
type Condition struct {
	Operator  string // base operator, e.g. "StringEquals"
	IfExists  bool
	Qualifier string // "", "ForAnyValue" or "ForAllValues"
	Key       string // lower-cased condition key
	Values    []string
}

// MalformedError says why a document does not parse; it is safe to show.
type MalformedError struct{ Reason string }

func (e *MalformedError) Error() string { return "malformed policy: " + e.Reason }

func malformed(format string, args ...any) error {
	return &MalformedError{Reason: fmt.Sprintf(format, args...)}
}

var operators = map[string]bool{
	"StringEquals": true, "StringNotEquals": true, "StringEqualsIgnoreCase": true, "StringNotEqualsIgnoreCase": true,
	"StringLike": true, "StringNotLike": true,
	"NumericEquals": true, "NumericNotEquals": true, "NumericLessThan": true, "NumericLessThanEquals": true,
	"NumericGreaterThan": true, "NumericGreaterThanEquals": true,
	"DateEquals": true, "DateNotEquals": true, "DateLessThan": true, "DateLessThanEquals": true,
	"DateGreaterThan": true, "DateGreaterThanEquals": true,
	"Bool": true, "BinaryEquals": true, "IpAddress": true, "NotIpAddress": true,
	"ArnEquals": true, "ArnLike": true, "ArnNotEquals": true, "ArnNotLike": true, "Null": true,
}

// Parse reads and validates a policy document.
func Parse(text string) (*Document, error) {
	if len(text) > MaxSize {
		return nil, malformed("the document is %d bytes; the limit is %d", len(text), MaxSize)
	}
	var raw struct {
		Version   string          `json:"Version"`
		ID        string          `json:"Id"`
		Statement json.RawMessage `json:"Statement"`
	}
	dec := json.NewDecoder(strings.NewReader(text))
	if err := dec.Decode(&raw); err != nil {
		return nil, malformed("the document is not a JSON object")
	}
	if dec.More() {
		return nil, malformed("trailing data after the JSON object")
	}
	switch raw.Version {
	case "", "2012-10-17", "2008-10-17":
	default:
		return nil, malformed("unknown Version %q", raw.Version)
	}
	if len(raw.Statement) == 0 {
		return nil, malformed("the document has no Statement")
	}
	var rawStatements []json.RawMessage
	if raw.Statement[0] == '[' {
		if err := json.Unmarshal(raw.Statement, &rawStatements); err != nil {
			return nil, malformed("Statement must be an object or a list of objects")
		}
	} else {
		rawStatements = []json.RawMessage{raw.Statement}
	}
	if len(rawStatements) == 0 {
		return nil, malformed("Statement is empty")
	}
	doc := &Document{Version: raw.Version, ID: raw.ID}
	for i, rs := range rawStatements {
		st, err := parseStatement(rs)
		if err != nil {
			return nil, malformed("statement %d: %s", i+1, err.(*MalformedError).Reason)
		}
		doc.Statements = append(doc.Statements, st)
	}
	return doc, nil
}

func parseStatement(b json.RawMessage) (Statement, error) {
	var raw struct {
		Sid          string                                `json:"Sid"`
		Effect       string                                `json:"Effect"`
		Principal    json.RawMessage                       `json:"Principal"`
		NotPrincipal json.RawMessage                       `json:"NotPrincipal"`
		Action       json.RawMessage                       `json:"Action"`
		NotAction    json.RawMessage                       `json:"NotAction"`
		Resource     json.RawMessage                       `json:"Resource"`
		NotResource  json.RawMessage                       `json:"NotResource"`
		Condition    map[string]map[string]json.RawMessage `json:"Condition"`
	}
	var st Statement
	if err := json.Unmarshal(b, &raw); err != nil {
		return st, malformed("not a valid statement object")
	}
	st.Sid = raw.Sid
	switch Effect(raw.Effect) {
	case Allow, Deny:
		st.Effect = Effect(raw.Effect)
	default:
		return st, malformed("Effect must be Allow or Deny")
	}
	var err error
	if st.Principal, err = parsePrincipals(raw.Principal); err != nil {
		return st, err
	}
	if st.NotPrincipal, err = parsePrincipals(raw.NotPrincipal); err != nil {
		return st, err
	}
	if st.Principal != nil && st.NotPrincipal != nil {
		return st, malformed("Principal and NotPrincipal cannot both be set")
	}
	if st.Action, err = stringList(raw.Action, "Action"); err != nil {
		return st, err
	}
	if st.NotAction, err = stringList(raw.NotAction, "NotAction"); err != nil {
		return st, err
	}
	if (st.Action == nil) == (st.NotAction == nil) {
		return st, malformed("exactly one of Action and NotAction is required")
	}
	if st.Resource, err = stringList(raw.Resource, "Resource"); err != nil {
		return st, err
	}
	if st.NotResource, err = stringList(raw.NotResource, "NotResource"); err != nil {
		return st, err
	}
	if (st.Resource == nil) == (st.NotResource == nil) {
		return st, malformed("exactly one of Resource and NotResource is required")
	}
	for op, keys := range raw.Condition {
		c := Condition{Operator: op}
		if q, rest, ok := strings.Cut(op, ":"); ok {
			if q != "ForAnyValue" && q != "ForAllValues" {
				return st, malformed("unknown condition qualifier %q", q)
			}
			c.Qualifier, c.Operator = q, rest
		}
		if base, ok := strings.CutSuffix(c.Operator, "IfExists"); ok && c.Operator != "Null" {
			c.Operator, c.IfExists = base, true
		}
		if !operators[c.Operator] {
			return st, malformed("unknown condition operator %q", op)
		}
		for key, v := range keys {
			vals, err := stringList(v, "Condition value")
			if err != nil {
				return st, err
			}
			if len(vals) == 0 {
				return st, malformed("condition %s %s has no values", op, key)
			}
			cc := c
			cc.Key, cc.Values = strings.ToLower(key), vals
			if err := checkValues(cc); err != nil {
				return st, err
			}
			st.Conditions = append(st.Conditions, cc)
		}
	}
	return st, nil
}

func checkValues(c Condition) error {
	for _, v := range c.Values {
		ok := true
		switch {
		case strings.HasPrefix(c.Operator, "Numeric"):
			_, err := strconv.ParseFloat(v, 64)
			ok = err == nil
		case strings.HasPrefix(c.Operator, "Date"):
			_, ok = parseDate(v)
		case c.Operator == "Bool" || c.Operator == "Null":
			ok = v == "true" || v == "false"
		case strings.HasSuffix(c.Operator, "IpAddress"):
			_, err := netip.ParsePrefix(v)
			if err != nil {
				_, err = netip.ParseAddr(v)
			}
			ok = err == nil
		}
		if !ok {
			return malformed("value %q is not valid for %s", v, c.Operator)
		}
	}
	return nil
}

func parseDate(v string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05Z", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, true
		}
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Unix(secs, 0), true
	}
	return time.Time{}, false
}

// stringList reads a JSON string or list of strings (numbers and booleans
// are accepted as their text, as AWS does in conditions). Absent is nil.
func stringList(b json.RawMessage, what string) ([]string, error) {
	if len(b) == 0 || string(b) == "null" {
		return nil, nil
	}
	var items []json.RawMessage
	if b[0] == '[' {
		if err := json.Unmarshal(b, &items); err != nil {
			return nil, malformed("%s must be a string or a list of strings", what)
		}
	} else {
		items = []json.RawMessage{b}
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		var s string
		if err := json.Unmarshal(it, &s); err != nil {
			var x any
			if json.Unmarshal(it, &x) != nil {
				return nil, malformed("%s must be a string or a list of strings", what)
			}
			switch v := x.(type) {
			case float64:
				s = strconv.FormatFloat(v, 'f', -1, 64)
			case bool:
				s = strconv.FormatBool(v)
			default:
				return nil, malformed("%s must be a string or a list of strings", what)
			}
		}
		out = append(out, s)
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

func parsePrincipals(b json.RawMessage) (*Principals, error) {
	if len(b) == 0 || string(b) == "null" {
		return nil, nil
	}
	var star string
	if json.Unmarshal(b, &star) == nil {
		if star != "*" {
			return nil, malformed(`Principal must be "*" or an object such as {"AWS": "arn:aws:iam::111122223333:root"}`)
		}
		return &Principals{Any: true}, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, malformed("Principal must be \"*\" or an object")
	}
	p := &Principals{}
	for k, v := range m {
		vals, err := stringList(v, "Principal")
		if err != nil {
			return nil, err
		}
		switch k {
		case "AWS":
			for _, a := range vals {
				if a == "*" {
					p.Any = true
					continue
				}
				if !validPrincipal(a) {
					return nil, malformed("%q is not a valid AWS principal", a)
				}
				p.AWS = append(p.AWS, a)
			}
		case "Service":
			p.Service = append(p.Service, vals...)
		case "Federated", "CanonicalUser":
			// Accepted and never matched: keyledger has no such principals.
		default:
			return nil, malformed("unknown principal type %q", k)
		}
	}
	return p, nil
}

// ValidPrincipal reports whether a is a 12-digit account id or an IAM/STS
// principal ARN.
func ValidPrincipal(a string) bool { return validPrincipal(a) }

// validPrincipal accepts a 12-digit account id or an IAM/STS ARN.
func validPrincipal(a string) bool {
	if isAccountID(a) {
		return true
	}
	parts := strings.SplitN(a, ":", 6)
	return len(parts) == 6 && parts[0] == "arn" && (parts[2] == "iam" || parts[2] == "sts") && isAccountID(parts[4]) && parts[5] != ""
}

func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
