package awsjson

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	jsonv1 "github.com/go-json-experiment/json/v1"
	"github.com/google/go-cmp/cmp"

	"github.com/keyledger/keyledger/gateway/keyservice"
)

// TestEveryOperationDecodesAsBefore holds decode, for every operation's
// request type (not only the fuzzed ones), to the decoder it replaced
// (v1 options with legacy error reporting): a body with every member set,
// and bodies made to part the two (a wrong type before a syntax error,
// trailing garbage, huge numbers, base64 with newlines, nulls, names in
// another case, a duplicate after an error) are accepted, refused,
// reported and decoded alike. Without legacy reporting a request type
// whose fields conflict would refuse every body: this is where it shows.
func TestEveryOperationDecodesAsBefore(t *testing.T) {
	bodies := []string{
		`{"Plaintext":12,"KeyId":"a"`,
		`{"Plaintext":12,"KeyId":"a"}}`,
		`{"Plaintext":12,"KeyId":"a"} x`,
		`{"KeyId":"a"} {}`,
		`{"KeyId":"a"}garbage`,
		`{"KeyId":"a",}`,
		`{"Plaintext":12,"KeyId":[}`,
		`{"KeyId":1,"Plaintext":"@@"}`,
		`{"Plaintext":"@@","KeyId":1}`,
		`{"NumberOfBytes":1e400}`,
		`{"NumberOfBytes":123456789012345678901234567890}`,
		`{"NumberOfBytes":-0}`,
		`{"NumberOfBytes":1.0}`,
		`{"NumberOfBytes":1e2}`,
		`{"NumberOfBytes":01}`,
		`{"NumberOfBytes":"5"}`,
		`{"Limit":2147483648}`,
		`{"Limit":-2147483649}`,
		`{"Plaintext":"aGVs\nbG8="}`,
		`{"Plaintext":"aGVs\r\nbG8="}`,
		`{"Plaintext":"aGVsbG8"}`,
		`{"Plaintext":"aGVsbG8=\n"}`,
		`{"Plaintext":"aGVsbG8= "}`,
		`{"Plaintext":"aGVs bG8="}`,
		`{"Plaintext":"aGVsbG9="}`,
		`{"Plaintext":"aGVsbG8_"}`,
		`{"Plaintext":"aGVsbG8-"}`,
		`{"Plaintext":null,"KeyId":null,"EncryptionContext":null,"GrantTokens":null}`,
		`{"EncryptionContext":{"a":null}}`,
		`{"GrantTokens":[null,"a"]}`,
		`{"DryRun":null}`,
		`{"keyid":"a","PLAINTEXT":"aGk=","encryptioncontext":{"A":"b","a":"c"}}`,
		`{"KEYID":"a","kEyId":"b"}`,
		`{"KeyId":1,"keyid":"a"}`,
		`{"KeyId":"a","KeyId":1}`,
		`{"Plaintext":12,"KeyId":"a","KeyId":"b"}`,
		`{"Plaintext":12,"X":1,"X":2}`,
		`{"Plaintext":12,"EncryptionContext":{"a":"b","a":"c"}}`,
		`{"EncryptionContext":{"a":1}}`,
		`{"EncryptionContext":[]}`,
		`{"EncryptionContext":{"a":"b"},"Plaintext":true}`,
		`{"Unknown":{"deep":[1,2,{"x":null}]},"KeyId":"k"}`,
		`{"Unknown":[1,2,}`,
		`{"KeyId":"k","Unknown":tru}`,
		`{"KeyId":"\u0000"}`,
		`{"KeyId":"\ud800"}`,
		`{"KeyId":"a\/b"}`,
		`{"DryRun":"true"}`,
		`{"DryRun":1}`,
		`{"Plaintext":12,"DryRun":tru}`,
		`{"Plaintext":[1,2]}`,
		`{"Plaintext":12}` + strings.Repeat(" ", 10),
		"{\"KeyId\":\"a\"}\x00",
		`{"KeyId":"a"}]`,
		`{"Recipient":{"KeyEncryptionAlgorithm":1,"AttestationDocument":"AA=="}}`,
		`{"Recipient":{"AttestationDocument":"A"}}`,
		`{"Recipient":null}`,
		`{"Recipient":{},"Recipient2":1}`,
		`{"Constraints":{"EncryptionContextSubset":{"a":"b"}},"Operations":["Encrypt"],"KeyId":"k","GranteePrincipal":"p"}`,
		`{"Constraints":{"EncryptionContextSubset":{"a":2}},"KeyId":"k"}`,
		`{"Tags":[{"TagKey":"a","TagValue":1},{"TagKey":5}]}`,
		`{"Tags":[{"TagKey":"a","tagkey":"b"}]}`,
		`{"ValidTo":1e10,"ImportToken":"AA==","EncryptedKeyMaterial":"AA=="}`,
		`{"ValidTo":null}`,
		`{"ValidTo":"1"}`,
		`{"ValidTo":1e400}`,
		`{"ValidTo":-1}`,
	}
	stop := errors.New("stop")
	sameTime := cmp.Transformer("epoch", func(e keyservice.EpochTime) int64 { return time.Time(e).UnixNano() })
	for name, h := range operations(nil) {
		var in any
		if _, err := h(context.Background(), keyservice.Caller{}, []byte(`{}`), func(x any) (func(), error) { in = x; return nil, stop }); err != stop {
			t.Fatalf("%s: {} refused: %v", name, err)
		}
		typ := reflect.TypeOf(in).Elem()
		full := reflect.New(typ)
		fill(full.Elem(), 0)
		body, err := json.Marshal(full.Interface())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, b := range append(bodies, string(body)) {
			got, old := reflect.New(typ).Interface(), reflect.New(typ).Interface()
			gerr, oerr := decode([]byte(b), got), previousDecode([]byte(b), old)
			if gerr != nil || oerr != nil {
				if gerr == nil || oerr == nil || gerr.(*keyservice.Error).Message != oerr.(*keyservice.Error).Message {
					t.Errorf("%s %s: refused with %v, before with %v", name, b, gerr, oerr)
				}
				continue
			}
			if diff := cmp.Diff(old, got, sameTime); diff != "" {
				t.Errorf("%s %s: decoded differently (-before +now):\n%s", name, b, diff)
			}
		}
	}
}

// previousDecode is decode as of 1a15faf.
func previousDecode(body []byte, in any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil
	}
	if body[0] != '{' {
		return &keyservice.Error{Code: codeSerialization, Message: "The request body must be a JSON object."}
	}
	switch checkStrict(body) {
	case strictBadUTF8:
		return &keyservice.Error{Code: keyservice.CodeValidation, Message: "1 validation error detected: a string in the request is not valid UTF-8."}
	case strictDuplicate:
		return &keyservice.Error{Code: codeSerialization, Message: "The request body names a member more than once."}
	case strictTooDeep:
		return &keyservice.Error{Code: codeSerialization, Message: "The request body is nested too deeply."}
	}
	if err := jsonv1.Unmarshal(body, in); err != nil {
		err = json.Unmarshal(body, in)
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return &keyservice.Error{Code: codeSerialization, Message: "Member '" + typeErr.Field + "' has the wrong type or is out of range."}
		}
		return &keyservice.Error{Code: codeSerialization, Message: "The request body is not valid JSON for this operation (malformed JSON, wrong member types, or invalid base64)."}
	}
	return nil
}

// fill sets every exported member reachable from v.
func fill(v reflect.Value, depth int) {
	switch v.Kind() {
	case reflect.Pointer:
		if depth > 6 {
			return
		}
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), depth+1)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(keyservice.EpochTime{}) {
			v.Set(reflect.ValueOf(keyservice.EpochTime(time.UnixMilli(1700000000123).UTC())))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), depth+1)
			}
		}
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int32, reflect.Int64:
		v.SetInt(7)
	case reflect.Uint8, reflect.Uint, reflect.Uint32, reflect.Uint64:
		v.SetUint(7)
	case reflect.Float64:
		v.SetFloat(1.5)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := 0; i < 2; i++ {
			fill(s.Index(i), depth+1)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k := reflect.New(v.Type().Key()).Elem()
		fill(k, depth+1)
		e := reflect.New(v.Type().Elem()).Elem()
		fill(e, depth+1)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Interface:
		v.Set(reflect.ValueOf("x"))
	}
}
