// Package writerapi serves the endpoints that register instances' writer
// keys, beside the KMS API and SigV4-signed like it:
//
//	POST /writers         {"publicKey": "<base64 Ed25519>"}  keyledger:RegisterWriter
//	POST /writers/revoke  {"writerId": "<id>"} or            keyledger:RevokeWriter
//	                      {"publicKey": "<key>"}, "reason"
//	GET  /writers         the registered and revoked writers keyledger:RegisterWriter
//
// A second (or later) instance of a deployment starts with its own writer
// key and records nothing until an operator registers that key through an
// instance that is registered already (`keyledger writer register`); the
// registration is a WriterRegistered event that instance signs. A
// revocation is a WriterRevoked event another registered instance signs;
// from then on the revoked instance serves nothing. Handlers hold no state
// of their own.
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
	srv.Post("/writers/revoke", func(c *fiber.Ctx, caller keyservice.Caller) error {
		var in keyservice.RevokeWriterInput
		if err := json.Unmarshal(c.Request().Body(), &in); err != nil || in.WriterID == "" && in.PublicKey == "" {
			return &keyservice.Error{Code: keyservice.CodeValidation, Message: `The body must be {"writerId": "<writer ID>"} or {"publicKey": "<base64 Ed25519 public key>"}, with an optional "reason".`}
		}
		r, err := svc.RevokeWriter(c.UserContext(), caller, in)
		if err != nil {
			return err
		}
		return c.JSON(r)
	})
	srv.Get("/writers", func(c *fiber.Ctx, caller keyservice.Caller) error {
		w, err := svc.ListWriters(caller)
		if err != nil {
			return err
		}
		return c.JSON(w)
	})
}
