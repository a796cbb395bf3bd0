// Package seedapi serves POST /seed beside the KMS API: a seed file
// (package seed) applied to a running server through keyservice.Seed,
// SigV4-signed like the KMS API. Seeding is a service-wide operation, for
// the operator account's principals whose identity policies allow
// keyledger:Seed. The seed's key material is never logged or echoed.
package seedapi

import (
	"encoding/json"

	"github.com/gofiber/fiber/v2"

	"github.com/keyledger/keyledger/gateway/awsjson"
	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/gateway/seed"
)

// Register serves POST /seed beside the KMS API, SigV4-signed like it and
// allowed to principals of the operator account whose identity policies
// allow keyledger:Seed (keyservice decides). dev says whether this server
// accepts known key material for AWS_KMS keys (serve --seed-dev); a
// request gets it only when it asks too.
func Register(srv *awsjson.Server, svc *keyservice.Service, dev bool) {
	srv.Post("/seed", func(c *fiber.Ctx, caller keyservice.Caller) error {
		if svc.Sealed() {
			return &keyservice.Error{Code: "ServiceUnavailableException", Message: "The root key is sealed: seeding waits until it is unsealed."}
		}
		var req seed.Request
		if err := json.Unmarshal(c.Request().Body(), &req); err != nil || req.Seed == "" {
			return &keyservice.Error{Code: keyservice.CodeValidation, Message: `The body must be {"Seed": "<seed file>", "Dev": false}.`}
		}
		in, err := seed.Parse([]byte(req.Seed))
		if err != nil {
			return &keyservice.Error{Code: keyservice.CodeValidation, Message: err.Error()}
		}
		defer seed.Clear(in)
		in.KnownMaterial = dev && req.Dev
		out, err := svc.Seed(c.UserContext(), caller, in)
		if err != nil {
			return err
		}
		return c.JSON(out)
	})
}
