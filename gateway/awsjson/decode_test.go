package awsjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

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

// FuzzDecodeMatchesEncodingJSON holds the decoder to encoding/json's
// results: whatever the strict check lets through decodes to the same
// request, or fails alike (with the same member named in a type error).
func FuzzDecodeMatchesEncodingJSON(f *testing.F) {
	f.Add([]byte(`{"KeyId":"alias/x","Plaintext":"aGVsbG8=","EncryptionContext":{"a":"b"}}`))
	f.Add([]byte(`{"keyid":"alias/x","PLAINTEXT":"aGVs\nbG8=","GrantTokens":null,"DryRun":true}`))
	f.Add([]byte(`{"KeyId":"k","NumberOfBytes":1e20,"KeySpec":"AES_256"}`))
	f.Add([]byte(`{"KeyId":"k","NumberOfBytes":-1.5}`))
	f.Add([]byte(`{"CiphertextBlob":"AQID","Recipient":{"AttestationDocument":"AA=="},"EncryptionContext":{"x":"\u00e9\ud83d\ude00"}}`))
	f.Add([]byte(`{"Plaintext":"aGk"}`))
	f.Add([]byte(`{"Plaintext":12,"KeyId":["a"]}`))
	f.Add([]byte(`{"Limit":5,"Marker":"m","KeyUsage":"SIGN_VERIFY","Tags":[{"TagKey":"a","TagValue":null}]}`))
	f.Add([]byte(`{"EncryptionContext":{"a":null},"GrantTokens":["t",null]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		targets := []func() any{
			func() any { return &keyservice.EncryptInput{} }, func() any { return &keyservice.DecryptInput{} },
			func() any { return &keyservice.CreateKeyInput{} }, func() any { return &keyservice.GenerateDataKeyInput{} },
			func() any { return &keyservice.ListInput{} }, func() any { return &keyservice.ReEncryptInput{} },
			func() any { return &keyservice.SignInput{} },
		}
		for _, target := range targets {
			got, want := target(), target()
			err := decode(body, got)
			if err != nil && err.(*keyservice.Error).Message != "The request body is not valid JSON for this operation (malformed JSON, wrong member types, or invalid base64)." &&
				!strings.HasPrefix(err.(*keyservice.Error).Message, "Member '") {
				continue // refused before decoding (strictness, not an object)
			}
			werr := json.Unmarshal(bytes.TrimSpace(body), want)
			if len(bytes.TrimSpace(body)) == 0 {
				werr = nil
			}
			if (err == nil) != (werr == nil) {
				t.Fatalf("%T: decode error %v, encoding/json error %v", got, err, werr)
			}
			if err != nil {
				var typeErr *json.UnmarshalTypeError
				if errors.As(werr, &typeErr) && typeErr.Field != "" && err.(*keyservice.Error).Message != "Member '"+typeErr.Field+"' has the wrong type or is out of range." {
					t.Errorf("%T: %q, encoding/json names %q", got, err.(*keyservice.Error).Message, typeErr.Field)
				}
				continue
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("%T decoded differently from encoding/json (-want +got):\n%s", got, diff)
			}
		}
	})
}
