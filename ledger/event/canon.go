package event

import (
	"encoding/hex"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// TimeFormat is the canonical time layout (always UTC).
const TimeFormat = "2006-01-02T15:04:05.000000000Z"

// writer appends canonical JSON. Each object tracks whether it has written
// a member yet so commas come out right.
type writer struct {
	b     []byte
	first []bool
	depth [8]bool // first's storage while events nest no deeper
}

// newWriter returns a writer appending to dst.
func newWriter(dst []byte) *writer {
	w := &writer{b: dst}
	w.first = w.depth[:0]
	return w
}

func (w *writer) open() {
	w.b = append(w.b, '{')
	w.first = append(w.first, true)
}

func (w *writer) close() {
	w.b = append(w.b, '}')
	w.first = w.first[:len(w.first)-1]
}

func (w *writer) name(n string) {
	top := len(w.first) - 1
	if !w.first[top] {
		w.b = append(w.b, ',')
	}
	w.first[top] = false
	w.b = appendString(w.b, n)
	w.b = append(w.b, ':')
}

// str writes a string member, omitted when empty.
func (w *writer) str(n, v string) {
	if v != "" {
		w.name(n)
		w.b = appendString(w.b, v)
	}
}

// strAlways writes a string member even when empty.
func (w *writer) strAlways(n, v string) {
	w.name(n)
	w.b = appendString(w.b, v)
}

// hashAlways writes a hash member as lowercase hex: the bytes strAlways
// writes for h.String(), without making the string.
func (w *writer) hashAlways(n string, h Hash) {
	w.name(n)
	w.b = append(w.b, '"')
	w.b = hex.AppendEncode(w.b, h[:])
	w.b = append(w.b, '"')
}

// timeAlways writes a time member in TimeFormat, in UTC: the bytes
// strAlways writes for its formatted string (which needs no escaping),
// without making the string.
func (w *writer) timeAlways(n string, t time.Time) {
	w.name(n)
	w.b = append(w.b, '"')
	w.b = t.UTC().AppendFormat(w.b, TimeFormat)
	w.b = append(w.b, '"')
}

// int writes an integer member, omitted when zero.
func (w *writer) int(n string, v int64) {
	if v != 0 {
		w.name(n)
		w.b = strconv.AppendInt(w.b, v, 10)
	}
}

// uintAlways writes an unsigned integer member even when zero.
func (w *writer) uintAlways(n string, v uint64) {
	w.name(n)
	w.b = strconv.AppendUint(w.b, v, 10)
}

// bool writes a boolean member, omitted when false.
func (w *writer) bool(n string, v bool) {
	if v {
		w.name(n)
		w.b = append(w.b, "true"...)
	}
}

// time writes a time member, omitted when zero.
func (w *writer) time(n string, t time.Time) {
	if !t.IsZero() {
		w.timeAlways(n, t)
	}
}

// strMap writes a string map member with sorted keys, omitted when empty.
func (w *writer) strMap(n string, m map[string]string) {
	if len(m) == 0 {
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	w.name(n)
	w.open()
	for _, k := range keys {
		w.strAlways(k, m[k])
	}
	w.close()
}

// strList writes a list of strings in the given order, omitted when empty.
func (w *writer) strList(n string, l []string) {
	if len(l) == 0 {
		return
	}
	w.name(n)
	w.b = append(w.b, '[')
	for i, s := range l {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.b = appendString(w.b, s)
	}
	w.b = append(w.b, ']')
}

// object writes a nested object member, omitted when fn writes nothing.
func (w *writer) object(n string, fn func(*writer)) {
	mark := len(w.b)
	wasFirst := w.first[len(w.first)-1]
	w.name(n)
	w.open()
	fn(w)
	empty := w.first[len(w.first)-1]
	w.close()
	if empty {
		w.b = w.b[:mark]
		w.first[len(w.first)-1] = wasFirst
	}
}

const hexDigits = "0123456789abcdef"

func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	// Most strings (ids, ARNs, names) need no escaping: copy the run of
	// plain ASCII at once, then go on byte by byte from the first that may.
	plain := 0
	for plain < len(s) && s[plain] >= 0x20 && s[plain] < 0x7f && s[plain] != '"' && s[plain] != '\\' {
		plain++
	}
	b = append(b, s[:plain]...)
	for i := plain; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, "\ufffd"...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
