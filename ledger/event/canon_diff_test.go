package event

import (
	"bytes"
	"strconv"
	"testing"
	"time"
	"unicode/utf8"
)

// refWriter and refAppendString are the canonical writer as it was before
// it kept its nesting stack inline, wrote hashes and times in place and
// copied plain ASCII at once (1a15faf): the reference the writer is held
// to byte for byte.
type refWriter struct {
	b     []byte
	first []bool
}

func (w *refWriter) open()  { w.b = append(w.b, '{'); w.first = append(w.first, true) }
func (w *refWriter) close() { w.b = append(w.b, '}'); w.first = w.first[:len(w.first)-1] }

func (w *refWriter) name(n string) {
	top := len(w.first) - 1
	if !w.first[top] {
		w.b = append(w.b, ',')
	}
	w.first[top] = false
	w.b = refAppendString(w.b, n)
	w.b = append(w.b, ':')
}

func (w *refWriter) strAlways(n, v string) { w.name(n); w.b = refAppendString(w.b, v) }

func (w *refWriter) time(n string, t time.Time) {
	if !t.IsZero() {
		w.strAlways(n, t.UTC().Format(TimeFormat))
	}
}

func (w *refWriter) object(n string, fn func(*refWriter)) {
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

func refAppendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
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

// FuzzCanonMatchesReference holds the writer to refWriter: any string (as
// a name and a value, invalid UTF-8, controls and 0x7f included), any
// time (years before 0 and after 9999 included), any hash, at any depth
// of nesting (past the writer's inline stack of 8 included), with empty
// objects dropped at every level.
func FuzzCanonMatchesReference(f *testing.F) {
	f.Add("plain", uint8(2), int64(1700000000), int64(123456789), []byte{1, 2, 3})
	f.Add("\"a\\b\"", uint8(9), int64(-62167219200-86400), int64(0), []byte{})
	f.Add("a\x7fb\x00c\x1f", uint8(20), int64(253402300800), int64(1), []byte{0xff})
	f.Add("é\xff\xfe\"\xed\xa0\x80z", uint8(8), int64(-1), int64(999999999), bytes.Repeat([]byte{0xab}, 40))
	f.Add("\\", uint8(0), int64(1<<62), int64(-5), []byte(nil))
	f.Fuzz(func(t *testing.T, s string, depth uint8, sec, nsec int64, h []byte) {
		if got, want := appendString([]byte("x"), s), refAppendString([]byte("x"), s); !bytes.Equal(got, want) {
			t.Fatalf("appendString(%q) = %s, want %s", s, got, want)
		}
		tm := time.Unix(sec, nsec).In(time.FixedZone("odd", -(3*3600 + 1800)))
		var hash Hash
		copy(hash[:], h)
		d := int(depth % 24)

		got := newWriter([]byte("prefix"))
		var fill func(w *writer, level int)
		fill = func(w *writer, level int) {
			if level == d {
				return
			}
			w.object("empty"+strconv.Itoa(level), func(*writer) {})
			w.object(s, func(w *writer) { fill(w, level+1) })
			w.time(s, tm)
			w.timeAlways("t", tm)
			w.hashAlways(s, hash)
			w.strAlways(s, s)
			w.object("empty", func(*writer) {})
		}
		got.open()
		got.hashAlways("prev", hash)
		fill(got, 0)
		got.close()

		want := &refWriter{b: []byte("prefix")}
		var refFill func(w *refWriter, level int)
		refFill = func(w *refWriter, level int) {
			if level == d {
				return
			}
			w.object("empty"+strconv.Itoa(level), func(*refWriter) {})
			w.object(s, func(w *refWriter) { refFill(w, level+1) })
			w.time(s, tm)
			w.strAlways("t", tm.UTC().Format(TimeFormat))
			w.strAlways(s, hash.String())
			w.strAlways(s, s)
			w.object("empty", func(*refWriter) {})
		}
		want.open()
		want.strAlways("prev", hash.String())
		refFill(want, 0)
		want.close()

		if !bytes.Equal(got.b, want.b) {
			t.Fatalf("s %q depth %d time %v hash %x:\n got %s\nwant %s", s, d, tm, hash, got.b, want.b)
		}
		if len(got.first) != 0 || len(want.first) != 0 {
			t.Fatalf("nesting left open: %d, %d", len(got.first), len(want.first))
		}
	})
}
