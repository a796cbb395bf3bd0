package policy

import (
	"encoding/json"
	"strings"
)

// maxStrictDepth bounds how deeply CheckStrict follows a document; real
// policies nest five levels (Statement, a statement, Condition, an
// operator, a value list).
const maxStrictDepth = 32

// CheckStrict refuses a policy document that names a member twice in one
// object, also in another letter case. Parse (encoding/json) matches element
// names case-insensitively and keeps the last, so a statement reading
// "Effect":"Deny" that ends in "effect":"Allow" would allow, while GetKeyPolicy
// and every reviewer show the Deny. New policies are checked here; Parse
// stays lenient so that documents already in the ledger replay as before.
func CheckStrict(text string) error {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	return strictValue(dec, 0)
}

func strictValue(dec *json.Decoder, depth int) error {
	if depth > maxStrictDepth {
		return malformed("the document is nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return malformed("the document is not valid JSON")
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			name, err := dec.Token()
			if err != nil {
				return malformed("the document is not valid JSON")
			}
			key := strings.ToLower(strings.ToUpper(name.(string))) // as encoding/json folds: K, ſ
			if seen[key] {
				return malformed("an object names %q more than once", name)
			}
			seen[key] = true
			if err := strictValue(dec, depth+1); err != nil {
				return err
			}
		}
		_, err = dec.Token() // '}'
	case json.Delim('['):
		for dec.More() {
			if err := strictValue(dec, depth+1); err != nil {
				return err
			}
		}
		_, err = dec.Token() // ']'
	}
	if err != nil {
		return malformed("the document is not valid JSON")
	}
	return nil
}
