package awsjson

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds how deeply a request body may nest. KMS request shapes
// nest three levels at most (GrantConstraints.EncryptionContextSubset).
const maxDepth = 32

// strictness is what checkStrict found wrong with a body.
type strictness int

const (
	strictOK        strictness = iota
	strictMalformed            // not JSON; left to the decoder's message
	strictBadUTF8              // a string holds invalid UTF-8 or a lone surrogate
	strictDuplicate            // an object names a member twice
	strictTooDeep
)

// checkStrict walks a JSON body once and reports what encoding/json would
// silently accept: invalid UTF-8 (which it replaces with U+FFFD, so the AAD
// would differ from what the caller sent) and duplicated members (where the
// last one wins). In objects that decode into structs (the request, its
// GrantConstraints, each Tag) names that differ only in case are duplicates
// too, since encoding/json matches struct fields case-insensitively; only
// the encryption-context members are maps, whose keys are case-sensitive.
func checkStrict(body []byte) strictness {
	s := scanner{b: body}
	s.ws()
	r := s.value(0, true)
	if r == strictOK {
		s.ws()
		if s.i != len(s.b) {
			return strictMalformed
		}
	}
	return r
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// value scans one value; fold says whether an object there decodes into a
// struct (names compared case-insensitively) rather than a map.
func (s *scanner) value(depth int, fold bool) strictness {
	if depth > maxDepth {
		return strictTooDeep
	}
	if s.i >= len(s.b) {
		return strictMalformed
	}
	switch s.b[s.i] {
	case '{':
		return s.object(depth+1, fold)
	case '[':
		return s.array(depth+1, fold)
	case '"':
		_, _, r := s.str()
		return r
	default: // number, true, false, null: the decoder checks their form
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return strictOK
			}
			s.i++
		}
		return strictOK
	}
}

func (s *scanner) array(depth int, fold bool) strictness {
	s.i++ // [
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return strictOK
	}
	for {
		s.ws()
		if r := s.value(depth, fold); r != strictOK {
			return r
		}
		s.ws()
		if s.i >= len(s.b) {
			return strictMalformed
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return strictOK
		default:
			return strictMalformed
		}
	}
}

func (s *scanner) object(depth int, fold bool) strictness {
	s.i++ // {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return strictOK
	}
	var names memberNames
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return strictMalformed
		}
		name, escaped, r := s.str()
		if r != strictOK {
			return r
		}
		if escaped {
			var unq string
			if json.Unmarshal(name, &unq) != nil {
				return strictMalformed
			}
			name = []byte(`"` + unq + `"`)
		}
		if !names.add(name[1:len(name)-1], fold) {
			return strictDuplicate
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return strictMalformed
		}
		s.i++
		s.ws()
		if r := s.value(depth, !isContextMember(name[1:len(name)-1])); r != strictOK {
			return r
		}
		s.ws()
		if s.i >= len(s.b) {
			return strictMalformed
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return strictOK
		default:
			return strictMalformed
		}
	}
}

// str consumes a string literal and returns it with its quotes, whether it
// holds escapes, and whether its text is valid UTF-8 (escaped surrogates
// must come in pairs).
func (s *scanner) str() ([]byte, bool, strictness) {
	start := s.i
	s.i++ // "
	// Fast path: no escapes before the closing quote (base64 blobs, most
	// names and values), checked with the library's vectorised searches.
	if j := bytes.IndexByte(s.b[s.i:], '"'); j >= 0 {
		span := s.b[s.i : s.i+j]
		if bytes.IndexByte(span, '\\') < 0 {
			if !utf8.Valid(span) {
				return nil, false, strictBadUTF8
			}
			s.i += j + 1
			return s.b[start:s.i], false, strictOK
		}
	}
	escaped := false
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return s.b[start:s.i], escaped, strictOK
		case c == '\\':
			escaped = true
			if s.i+1 >= len(s.b) {
				return nil, false, strictMalformed
			}
			if s.b[s.i+1] != 'u' {
				s.i += 2
				continue
			}
			r1, ok := hex4(s.b, s.i+2)
			if !ok {
				return nil, false, strictMalformed
			}
			s.i += 6
			if !utf16.IsSurrogate(r1) {
				continue
			}
			// A high surrogate must be followed by an escaped low one.
			if r1 >= 0xdc00 || s.i+1 >= len(s.b) || s.b[s.i] != '\\' || s.b[s.i+1] != 'u' {
				return nil, false, strictBadUTF8
			}
			r2, ok := hex4(s.b, s.i+2)
			if !ok {
				return nil, false, strictMalformed
			}
			if utf16.DecodeRune(r1, r2) == utf8.RuneError {
				return nil, false, strictBadUTF8
			}
			s.i += 6
		case c < utf8.RuneSelf:
			s.i++
		default:
			r, n := utf8.DecodeRune(s.b[s.i:])
			if r == utf8.RuneError && n == 1 {
				return nil, false, strictBadUTF8
			}
			s.i += n
		}
	}
	return nil, false, strictMalformed
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// memberNames is the set of names seen in one object: a short list compared
// in place, and a map once an object is large, so a hostile body with
// thousands of members costs linear time.
type memberNames struct {
	few  [fewNames][]byte
	n    int
	many map[string]struct{}
}

const fewNames = 16

// add records name and reports whether it was new.
func (m *memberNames) add(name []byte, fold bool) bool {
	if m.many == nil {
		for _, n := range m.few[:m.n] {
			if bytes.Equal(n, name) || fold && bytes.EqualFold(n, name) {
				return false
			}
		}
		if m.n < fewNames {
			m.few[m.n] = name
			m.n++
			return true
		}
		m.many = make(map[string]struct{}, 2*fewNames)
		for _, n := range m.few {
			m.many[key(n, fold)] = struct{}{}
		}
	}
	k := key(name, fold)
	if _, dup := m.many[k]; dup {
		return false
	}
	m.many[k] = struct{}{}
	return true
}

func key(name []byte, fold bool) string {
	if fold {
		// Upper then lower folds as encoding/json and bytes.EqualFold
		// do: "ſ" (U+017F) and "s", "K" (U+212A) and "k".
		return strings.ToLower(strings.ToUpper(string(name)))
	}
	return string(name)
}

// isContextMember reports whether a member holds an encryption context:
// the only map-typed members in KMS requests, whose keys are
// case-sensitive.
func isContextMember(name []byte) bool {
	for _, m := range [...]string{"EncryptionContext", "SourceEncryptionContext", "DestinationEncryptionContext",
		"EncryptionContextSubset", "EncryptionContextEquals"} {
		if bytes.EqualFold(name, []byte(m)) {
			return true
		}
	}
	return false
}
