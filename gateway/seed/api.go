package seed

import (
	"encoding/json"

	"github.com/gofiber/fiber/v2"

	"github.com/keyledger/keyledger/gateway/awsjson"
	"github.com/keyledger/keyledger/gateway/keyservice"
)

// Request is the body of POST /seed: the seed file's text, and whether the
// caller asks for development mode (key material for AWS_KMS keys).
type Request struct {
	Seed string `json:"Seed"`
	Dev  bool   `json:"Dev"`
}

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
		var req Request
		if err := json.Unmarshal(c.Request().Body(), &req); err != nil || req.Seed == "" {
			return &keyservice.Error{Code: keyservice.CodeValidation, Message: `The body must be {"Seed": "<seed file>", "Dev": false}.`}
		}
		in, err := Parse([]byte(req.Seed))
		if err != nil {
			return &keyservice.Error{Code: keyservice.CodeValidation, Message: err.Error()}
		}
		defer Clear(in)
		in.KnownMaterial = dev && req.Dev
		out, err := svc.Seed(c.UserContext(), caller, in)
		if err != nil {
			return err
		}
		return c.JSON(out)
	})
}
