package awsjson

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/keyledger/keyledger/gateway/keyservice"
)

func TestDecodeRefusesWhatEncodingJSONWouldAccept(t *testing.T) {
	tests := []struct {
		name, body string
		code       keyservice.Code // "" = accepted
	}{
		{"plain", `{"KeyId":"alias/x","Plaintext":"aGk=","EncryptionContext":{"a":"b"}}`, ""},
		{"escaped pair", `{"KeyId":"alias/x","EncryptionContext":{"k":"\ud83d\ude00 \u00e9"}}`, ""},
		{"raw multibyte", `{"KeyId":"alias/x","EncryptionContext":{"k":"é😀"}}`, ""},
		{"context keys differing in case", `{"KeyId":"k","EncryptionContext":{"Purpose":"a","purpose":"b"}}`, ""},
		{"invalid byte in value", "{\"KeyId\":\"k\",\"EncryptionContext\":{\"a\":\"b\xff\"}}", keyservice.CodeValidation},
		{"invalid byte in key", "{\"KeyId\":\"k\",\"EncryptionContext\":{\"a\xc3\":\"b\"}}", keyservice.CodeValidation},
		{"overlong encoding", "{\"KeyId\":\"\xc0\xafk\"}", keyservice.CodeValidation},
		{"lone high surrogate", `{"KeyId":"k","EncryptionContext":{"a":"\ud83d"}}`, keyservice.CodeValidation},
		{"lone low surrogate", `{"KeyId":"k","EncryptionContext":{"a":"\ude00x"}}`, keyservice.CodeValidation},
		{"high then non-low", `{"KeyId":"k","EncryptionContext":{"a":"\ud83d\u0041"}}`, keyservice.CodeValidation},
		{"invalid in unknown member", "{\"KeyId\":\"k\",\"Other\":[\"\xfe\"]}", keyservice.CodeValidation},
		{"duplicate member", `{"KeyId":"alias/a","KeyId":"alias/b"}`, codeSerialization},
		{"duplicate differing in case", `{"KeyId":"alias/a","keyid":"alias/b"}`, codeSerialization},
		{"duplicate by escape", `{"KeyId":"alias/a","K\u0065yId":"alias/b"}`, codeSerialization},
		{"duplicate context key", `{"KeyId":"k","EncryptionContext":{"a":"1","a":"2"}}`, codeSerialization},
		{"duplicate past the short list", `{"KeyId":"k","EncryptionContext":{` + manyMembers(40) + `,"m7":"x"}}`, codeSerialization},
		{"many distinct members", `{"KeyId":"k","EncryptionContext":{` + manyMembers(40) + `}}`, ""},
		{"nested struct members differing in case", `{"KeyId":"k","Constraints":{"EncryptionContextSubset":{"a":"1"},"encryptioncontextsubset":{"b":"2"}}}`, codeSerialization},
		{"struct in a list, members differing in case", `{"Tags":[{"TagKey":"a","TagValue":"1","tagvalue":"2"}]}`, codeSerialization},
		{"constraint context keys differing in case", `{"KeyId":"k","Constraints":{"EncryptionContextEquals":{"Purpose":"a","purpose":"b"}}}`, ""},
		{"long-s fold past the short list", `{` + manyMembers(20) + `,"GrantTokens":[],"GrantToken\u017f":[]}`, codeSerialization},
		{"too deep", `{"KeyId":"k","X":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, codeSerialization},
		{"malformed", `{"KeyId":"k",}`, codeSerialization},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := decode([]byte(tc.body), &keyservice.EncryptInput{})
			if tc.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			e, ok := err.(*keyservice.Error)
			if !ok || e.Code != tc.code {
				t.Fatalf("got %v, want %s", err, tc.code)
			}
		})
	}
}

func manyMembers(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = `"m` + itoa(i) + `":"v"`
	}
	return strings.Join(parts, ",")
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// BenchmarkDecodeEncrypt is the decoder's and the strict check's cost on
// the hot path: a typical Encrypt body decoded, with encoding/json in
// place of the decoder, and checked only. (The other libraries compared
// for the decoder, outside the module: goccy/go-json, segmentio/encoding,
// bytedance/sonic; see the commit that chose it.)
func BenchmarkDecodeEncrypt(b *testing.B) {
	body := []byte(`{"KeyId":"alias/bench","Plaintext":"` + strings.Repeat("QUJD", 342) + `","EncryptionContext":{"app":"billing","tenant":"t-42"}}`)
	b.ReportAllocs()
	b.Run("strict+decode", func(b *testing.B) {
		for b.Loop() {
			if err := decode(body, &keyservice.EncryptInput{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("strict+encoding/json", func(b *testing.B) { // the decoder before
		for b.Loop() {
			if checkStrict(body) != strictOK || json.Unmarshal(body, &keyservice.EncryptInput{}) != nil {
				b.Fatal("refused")
			}
		}
	})
	b.Run("strict only", func(b *testing.B) {
		for b.Loop() {
			if checkStrict(body) != strictOK {
				b.Fatal("refused")
			}
		}
	})
}
