// Package rootapi serves the root key's own HTTP endpoints beside the KMS
// API, SigV4-signed like it:
//
//	POST /unseal         {"share": "klshare1-…"}  keyledger:Unseal
//	GET  /unseal         where unsealing stands   keyledger:Unseal
//	POST /root/rotate    start a root key rotation keyledger:RotateRootKey
//	GET  /root/rotation  its progress             keyledger:RotateRootKey
//
// They act on every account's keys, so only principals of the operator
// account (node.Config.OperatorAccount) may call them, as their identity
// policies allow; keyservice decides. They answer while the root key is
// sealed (the KMS API does not). Shares
// travel in the signed body, never in a URL, and are never logged or
// echoed. Handlers hold no state of their own.
package rootapi

import (
	"encoding/json"

	"github.com/gofiber/fiber/v2"

	"github.com/keyledger/keyledger/gateway/awsjson"
	"github.com/keyledger/keyledger/gateway/keyservice"
)

// Register adds the endpoints: unsealing when unseal is non-nil (a seal
// opened by shares), rotation when rotation is non-nil.
func Register(srv *awsjson.Server, unseal *keyservice.Unseal, rotation *keyservice.RootRotation) {
	if unseal != nil {
		srv.Post("/unseal", func(c *fiber.Ctx, caller keyservice.Caller) error {
			var in struct {
				Share string `json:"share"`
			}
			if err := json.Unmarshal(c.Request().Body(), &in); err != nil || in.Share == "" {
				return &keyservice.Error{Code: keyservice.CodeValidation, Message: `The body must be {"share": "<unseal share>"}.`}
			}
			p, err := unseal.SubmitShare(c.UserContext(), caller, in.Share)
			if err != nil {
				return err
			}
			return c.JSON(p)
		})
		srv.Get("/unseal", func(c *fiber.Ctx, caller keyservice.Caller) error {
			p, err := unseal.Progress(caller)
			if err != nil {
				return err
			}
			return c.JSON(p)
		})
	}
	if rotation != nil {
		srv.Post("/root/rotate", func(c *fiber.Ctx, caller keyservice.Caller) error {
			st, err := rotation.Start(c.UserContext(), caller)
			if err != nil {
				return err
			}
			return c.JSON(st)
		})
		srv.Get("/root/rotation", func(c *fiber.Ctx, caller keyservice.Caller) error {
			st, err := rotation.Status(caller)
			if err != nil {
				return err
			}
			return c.JSON(st)
		})
	}
}
