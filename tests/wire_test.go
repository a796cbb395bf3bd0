package tests

import (
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var updateWire = flag.Bool("update-wire", false, "rewrite tests/testdata/wire")

// shape replaces every value of a decoded JSON document by its JSON type,
// keeping object keys and array structure: what must not change on the wire.
func shape(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, val := range x {
			out[k] = shape(val)
		}
		return out
	case []any:
		if len(x) == 0 {
			return []any{}
		}
		return []any{shape(x[0])}
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	case nil:
		return "null"
	}
	return "?"
}

// TestWireGolden compares the shape of raw AWS JSON answers (members, types,
// error fields and headers) with golden files, after parsing.
func TestWireGolden(t *testing.T) {
	in := start(t)
	call := func(target, body string) (int, map[string]any, http.Header) {
		req, _ := http.NewRequest("POST", in.endpoint+"/", strings.NewReader(body))
		req.Header.Set("X-Amz-Target", "TrentService."+target)
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		signRequest(req, "admin", []byte(body), time.Now())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var doc map[string]any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: not JSON: %s", target, raw)
		}
		return resp.StatusCode, doc, resp.Header
	}
	_, created, _ := call("CreateKey", `{"Description":"wire","Tags":[{"TagKey":"a","TagValue":"b"}]}`)
	keyID := created["KeyMetadata"].(map[string]any)["KeyId"].(string)
	cases := []struct{ name, target, body string }{
		{"create_key", "CreateKey", `{"Description":"wire"}`},
		{"describe_key", "DescribeKey", `{"KeyId":"` + keyID + `"}`},
		{"encrypt", "Encrypt", `{"KeyId":"` + keyID + `","Plaintext":"aGVsbG8="}`},
		{"generate_data_key", "GenerateDataKey", `{"KeyId":"` + keyID + `","KeySpec":"AES_256"}`},
		{"list_keys", "ListKeys", `{"Limit":1}`},
		{"get_key_rotation_status", "GetKeyRotationStatus", `{"KeyId":"` + keyID + `"}`},
		{"error_not_found", "DescribeKey", `{"KeyId":"00000000-0000-4000-8000-000000000000"}`},
		{"error_validation", "GenerateRandom", `{"NumberOfBytes":0}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, doc, hdr := call(tc.target, tc.body)
			got := map[string]any{"status": status, "body": shape(doc),
				"headers": []string{"content-type=" + hdr.Get("Content-Type"), "x-amzn-requestid=" + boolString(hdr.Get("x-amzn-RequestId") != ""),
					"x-amzn-errortype=" + hdr.Get("X-Amzn-ErrorType")}}
			path := filepath.Join("testdata", "wire", tc.name+".json")
			if *updateWire {
				b, _ := json.MarshalIndent(got, "", "  ")
				os.WriteFile(path, append(b, '\n'), 0o644)
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("golden %s: %v (run with -update-wire)", path, err)
			}
			var want map[string]any
			json.Unmarshal(raw, &want)
			gotJSON, _ := json.Marshal(got)
			var gotNorm map[string]any
			json.Unmarshal(gotJSON, &gotNorm)
			if diff := cmp.Diff(want, gotNorm); diff != "" {
				t.Fatalf("wire shape changed (-golden +got):\n%s", diff)
			}
		})
	}

}

func boolString(b bool) string {
	if b {
		return "present"
	}
	return "absent"
}
