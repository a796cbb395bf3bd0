// Package writerapi serves the endpoints that register instances' writer
// keys, beside the KMS API and SigV4-signed like it:
//
//	POST /writers  {"publicKey": "<base64 Ed25519>"}  keyledger:RegisterWriter
//	GET  /writers  the registered writers            keyledger:RegisterWriter
//
// A second (or later) instance of a deployment starts with its own writer
// key and records nothing until an operator registers that key through an
// instance that is registered already (`keyledger writer register`); the
// registration is a WriterRegistered event that instance signs. Handlers
// hold no state of their own.
package writerapi

import (
	"encoding/json"

	"github.com/gofiber/fiber/v2"

	"github.com/keyledger/keyledger/gateway/awsjson"
	"github.com/keyledger/keyledger/gateway/keyservice"
)

// Register adds the endpoints.
func Register(srv *awsjson.Server, svc *keyservice.Service) {
	srv.Post("/writers", func(c *fiber.Ctx, caller keyservice.Caller) error {
		var in struct {
			PublicKey string `json:"publicKey"`
		}
		if err := json.Unmarshal(c.Request().Body(), &in); err != nil || in.PublicKey == "" {
			return &keyservice.Error{Code: keyservice.CodeValidation, Message: `The body must be {"publicKey": "<base64 Ed25519 public key>"}.`}
		}
		r, err := svc.RegisterWriter(c.UserContext(), caller, in.PublicKey)
		if err != nil {
			return err
		}
		return c.JSON(r)
	})
	srv.Get("/writers", func(c *fiber.Ctx, caller keyservice.Caller) error {
		w, err := svc.Writers(caller)
		if err != nil {
			return err
		}
		return c.JSON(map[string]any{"writers": w})
	})
}
