package keyservice

import (
	"strings"
	"testing"

	"github.com/keyledger/keyledger/ledger/writer"
)

func TestRevokeTarget(t *testing.T) {
	k := writer.Generate()
	tests := []struct {
		name string
		in   RevokeWriterInput
		want string // the writer ID; "" for a ValidationException
	}{
		{"by id", RevokeWriterInput{WriterID: k.ID()}, k.ID()},
		{"by public key", RevokeWriterInput{PublicKey: k.PublicText()}, k.ID()},
		{"with a reason", RevokeWriterInput{WriterID: k.ID(), Reason: "décommissionné: kms-2 (ticket #41)"}, k.ID()},
		{"both", RevokeWriterInput{WriterID: k.ID(), PublicKey: k.PublicText()}, ""},
		{"neither", RevokeWriterInput{}, ""},
		{"uppercase id", RevokeWriterInput{WriterID: strings.ToUpper(k.ID())}, ""},
		{"short id", RevokeWriterInput{WriterID: k.ID()[:31]}, ""},
		{"malformed key", RevokeWriterInput{PublicKey: "bm90IGEga2V5"}, ""},
		{"reason too long", RevokeWriterInput{WriterID: k.ID(), Reason: strings.Repeat("x", 257)}, ""},
		{"reason with a line break", RevokeWriterInput{WriterID: k.ID(), Reason: "a\nb"}, ""},
		{"reason with an escape", RevokeWriterInput{WriterID: k.ID(), Reason: "\x1b[2J"}, ""},
		{"reason not UTF-8", RevokeWriterInput{WriterID: k.ID(), Reason: "\xff"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := revokeTarget(tt.in)
			if tt.want != "" {
				if err != nil || id != tt.want {
					t.Fatalf("revokeTarget = %q, %v; want %q", id, err, tt.want)
				}
				return
			}
			e, ok := err.(*Error)
			if !ok || e.Code != CodeValidation {
				t.Fatalf("revokeTarget = %q, %v; want a ValidationException", id, err)
			}
			if tt.in.Reason != "" && strings.Contains(e.Message, tt.in.Reason) {
				t.Fatalf("the message repeats the reason: %q", e.Message)
			}
		})
	}
}
