package awsjson

import (
	"strings"
	"testing"

	"github.com/keyledger/keyledger/gateway/keyservice"
)

// FuzzDecode feeds arbitrary bodies to the request decoder for several
// operations: it must never panic, and a failure is always a
// SerializationException (ValidationException for invalid UTF-8) that does
// not quote the input.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"KeyId":"alias/x","Plaintext":"aGVsbG8=","EncryptionContext":{"a":"b"}}`))
	f.Add([]byte(`{"NumberOfBytes":1e20}`))
	f.Add([]byte(`{"Tags":[{"TagKey":"a","TagValue":null}],"Policy":"{}"}`))
	f.Add([]byte(`[`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, body []byte) {
		targets := []any{&keyservice.EncryptInput{}, &keyservice.DecryptInput{}, &keyservice.CreateKeyInput{},
			&keyservice.GenerateDataKeyInput{}, &keyservice.ListInput{}, &keyservice.ReEncryptInput{}}
		for _, in := range targets {
			err := decode(body, in)
			if err == nil {
				continue
			}
			e, ok := err.(*keyservice.Error)
			if !ok || e.Code != codeSerialization && !(e.Code == keyservice.CodeValidation && checkStrict(body) == strictBadUTF8) {
				t.Fatalf("decode error %v is neither a SerializationException nor invalid UTF-8", err)
			}
			if len(body) > 8 && len(e.Message) > 0 && strings.Contains(e.Message, string(body)) {
				t.Fatalf("error message quotes the body: %q", e.Message)
			}
		}
	})
}
