package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretNeverPrints(t *testing.T) {
	s := New([]byte("TOPSECRETBYTES-0123456789"))
	type holder struct{ K Bytes }
	h := holder{K: s}
	out := fmt.Sprintf("%v %+v %#v %s %q %x %v %+v %#v", s, s, s, s, s, s, h, h, h)
	if strings.Contains(out, "TOPSECRET") || strings.Contains(out, "544f50") {
		t.Fatalf("secret leaked through fmt: %s", out)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("msg", "key", s, "holder", h)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("msg", "key", s)
	if strings.Contains(buf.String(), "TOPSECRET") {
		t.Fatalf("secret leaked through slog: %s", buf.String())
	}
	if _, err := json.Marshal(h); err == nil {
		t.Fatal("json.Marshal of a secret succeeded")
	}
}

func TestSecretEqualAndClear(t *testing.T) {
	a, b := New([]byte{1, 2, 3}), New([]byte{1, 2, 3})
	if !a.Equal(b) || a.Equal(New([]byte{1, 2, 4})) {
		t.Fatal("Equal is wrong")
	}
	a.Clear()
	if !bytes.Equal(a.Expose(), []byte{0, 0, 0}) {
		t.Fatal("Clear left bytes behind")
	}
	if Random(32).Len() != 32 {
		t.Fatal("Random length")
	}
}
