// Package policy parses AWS IAM-style policy documents (key policies and
// identity policies) and evaluates their statements against a request, as
// AWS documents the policy language: Effect, Principal/NotPrincipal,
// Action/NotAction with wildcards, Resource/NotResource, and Condition with
// the String, Numeric, Date, Bool, IpAddress, Arn and Null operators, the
// IfExists suffix and the ForAnyValue/ForAllValues qualifiers.
//
// The package is pure: no I/O, no clock of its own (aws:CurrentTime comes
// from the request), and safe for concurrent use. Parsed documents are
// immutable. It lives under projections because both sides use it: the
// gateway authorizes requests with it, and read-side folds (time travel,
// compliance) answer "who could decrypt" with the same evaluator.
package policy
