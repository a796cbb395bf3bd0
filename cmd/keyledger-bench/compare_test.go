package main

import (
	"encoding/base64"
	"encoding/json"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
)

// cpuTime reads this process's CPU time, which grows while it spins.
func TestCPUTimeGrows(t *testing.T) {
	before, err := cpuTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		now, err := cpuTime(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if now > before {
			return
		}
	}
	t.Fatal("CPU time read from /proc did not grow in 5 s of spinning")
}

// The bare handler answers each operation the compare mode drives in
// AWS's response shape.
func TestBareHandler(t *testing.T) {
	b, err := newBareServer()
	if err != nil {
		t.Fatal(err)
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Post("/", b.handle)
	for _, tc := range []struct {
		target, body, member string
		size                 int
	}{
		{"Encrypt", `{"KeyId":"k","Plaintext":"AAECAw=="}`, "CiphertextBlob", 12 + 4 + 16},
		{"GenerateDataKey", `{"KeyId":"k","KeySpec":"AES_256"}`, "Plaintext", 32},
		{"Sign", `{"KeyId":"k","Message":"AAECAw==","SigningAlgorithm":"ECDSA_SHA_256"}`, "Signature", 0},
	} {
		req := httptest.NewRequest("POST", "/", strings.NewReader(tc.body))
		req.Header.Set("X-Amz-Target", "TrentService."+tc.target)
		resp, err := app.Test(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", tc.target, resp, err)
		}
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		var blob []byte
		if s, ok := out[tc.member].(string); ok {
			blob, _ = base64.StdEncoding.DecodeString(s)
		}
		if len(blob) == 0 || tc.size > 0 && len(blob) != tc.size {
			t.Errorf("%s: %s has %d bytes, want %d", tc.target, tc.member, len(blob), tc.size)
		}
	}
}
