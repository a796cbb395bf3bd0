package main

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/gofiber/fiber/v2"
)

// The bare handler is the ceiling every performance claim is measured
// against: a Fiber server that decodes the same AWS JSON requests with
// encoding/json and does the operation's cryptography with the standard
// library — nothing else: no authentication, no authorization, no ledger,
// no key lookup. `keyledger-bench --compare` runs it as a child process
// (this binary with --bare-serve) beside `keyledger serve`, drives both
// with the same load generator in one run, and reports keyledger's rate
// and server CPU per request as ratios to it.

// Bare request and response shapes: the members of AWS's, as keyledger
// decodes them.
type (
	bareEncryptIn struct {
		KeyId               string
		Plaintext           []byte
		EncryptionContext   map[string]string
		GrantTokens         []string
		EncryptionAlgorithm string
		DryRun              bool
	}
	bareEncryptOut struct {
		CiphertextBlob      []byte
		KeyId               string
		EncryptionAlgorithm string
	}
	bareDataKeyIn struct {
		KeyId             string
		EncryptionContext map[string]string
		NumberOfBytes     *int32
		KeySpec           string
		GrantTokens       []string
		DryRun            bool
	}
	bareDataKeyOut struct {
		CiphertextBlob []byte
		Plaintext      []byte
		KeyId          string
		KeyMaterialId  string
	}
	bareSignIn struct {
		KeyId            string
		Message          []byte
		MessageType      string
		SigningAlgorithm string
		GrantTokens      []string
		DryRun           bool
	}
	bareSignOut struct {
		KeyId            string
		Signature        []byte
		SigningAlgorithm string
	}
)

const bareKeyID = "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-4000-8000-000000000000"

// bareServer holds the bare handler's keys: one AES-256-GCM key and one
// P-256 signing key, made at start.
type bareServer struct {
	gcm cipher.AEAD
	ec  *ecdsa.PrivateKey
}

func newBareServer() (*bareServer, error) {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return &bareServer{gcm: gcm, ec: ec}, nil
}

// seal is AES-256-GCM with a random nonce, the nonce in front.
func (b *bareServer) seal(plaintext []byte) []byte {
	out := make([]byte, 12, 12+len(plaintext)+16)
	_, _ = rand.Read(out)
	return b.gcm.Seal(out, out[:12], plaintext, nil)
}

func (b *bareServer) handle(c *fiber.Ctx) error {
	var out any
	switch c.Get("X-Amz-Target") {
	case "TrentService.CreateKey":
		out = map[string]any{"KeyMetadata": map[string]string{"KeyId": bareKeyID}}
	case "TrentService.Encrypt":
		var in bareEncryptIn
		if err := json.Unmarshal(c.Request().Body(), &in); err != nil {
			return c.Status(400).SendString(`{"__type":"SerializationException"}`)
		}
		out = bareEncryptOut{CiphertextBlob: b.seal(in.Plaintext), KeyId: bareKeyID, EncryptionAlgorithm: "SYMMETRIC_DEFAULT"}
	case "TrentService.GenerateDataKey":
		var in bareDataKeyIn
		if err := json.Unmarshal(c.Request().Body(), &in); err != nil {
			return c.Status(400).SendString(`{"__type":"SerializationException"}`)
		}
		dk := make([]byte, 32)
		_, _ = rand.Read(dk)
		out = bareDataKeyOut{CiphertextBlob: b.seal(dk), Plaintext: dk, KeyId: bareKeyID, KeyMaterialId: "bare"}
	case "TrentService.Sign":
		var in bareSignIn
		if err := json.Unmarshal(c.Request().Body(), &in); err != nil {
			return c.Status(400).SendString(`{"__type":"SerializationException"}`)
		}
		digest := sha256.Sum256(in.Message)
		sig, err := ecdsa.SignASN1(rand.Reader, b.ec, digest[:])
		if err != nil {
			return c.Status(500).SendString(`{"__type":"KMSInternalException"}`)
		}
		out = bareSignOut{KeyId: bareKeyID, Signature: sig, SigningAlgorithm: in.SigningAlgorithm}
	default:
		return c.Status(400).SendString(`{"__type":"UnknownOperationException"}`)
	}
	body, err := json.Marshal(out)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "application/x-amz-json-1.1")
	return c.Send(body)
}

// serveBare runs the bare handler on addr until SIGINT or SIGTERM.
func serveBare(addr string, stderr io.Writer) int {
	b, err := newBareServer()
	if err != nil {
		fmt.Fprintf(stderr, "keyledger-bench --bare-serve: %v\n", err)
		return 1
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true, BodyLimit: 256 << 10})
	app.Post("/", b.handle)
	app.Get("/readyz", func(c *fiber.Ctx) error { return c.SendString("ready\n") })
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(stderr, "keyledger-bench --bare-serve: %v\n", err)
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		_ = app.Shutdown()
	}()
	if err := app.Listener(ln); err != nil {
		fmt.Fprintf(stderr, "keyledger-bench --bare-serve: %v\n", err)
		return 1
	}
	return 0
}
