package awsjson

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"

	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"

	"github.com/keyledger/keyledger/gateway/keyservice"
)

// handler decodes one operation's request body and runs it once admit
// (the throttle) lets the decoded request through; it calls the release
// admit returned once the request is answered, its ledger commit
// included (see throttle.Fair).
type handler func(ctx context.Context, c keyservice.Caller, body []byte, admit func(in any) (release func(), err error)) (any, error)

// op adapts a service method to a handler.
func op[In, Out any](fn func(context.Context, keyservice.Caller, *In) (*Out, error)) handler {
	return func(ctx context.Context, c keyservice.Caller, body []byte, admit func(in any) (func(), error)) (any, error) {
		in := new(In)
		if err := decode(body, in); err != nil {
			return nil, err
		}
		release, err := admit(in)
		if err != nil {
			return nil, err
		}
		defer release()
		return fn(ctx, c, in)
	}
}

// operations is the one X-Amz-Target dispatch table.
func operations(svc *keyservice.Service) map[string]handler {
	return map[string]handler{
		"CreateKey":                           op(svc.CreateKey),
		"DescribeKey":                         op(svc.DescribeKey),
		"ListKeys":                            op(svc.ListKeys),
		"UpdateKeyDescription":                op(svc.UpdateKeyDescription),
		"EnableKey":                           op(svc.EnableKey),
		"DisableKey":                          op(svc.DisableKey),
		"ScheduleKeyDeletion":                 op(svc.ScheduleKeyDeletion),
		"CancelKeyDeletion":                   op(svc.CancelKeyDeletion),
		"Encrypt":                             op(svc.Encrypt),
		"Decrypt":                             op(svc.Decrypt),
		"ReEncrypt":                           op(svc.ReEncrypt),
		"GenerateDataKey":                     op(svc.GenerateDataKey),
		"GenerateDataKeyWithoutPlaintext":     op(svc.GenerateDataKeyWithoutPlaintext),
		"GenerateRandom":                      op(svc.GenerateRandom),
		"CreateAlias":                         op(svc.CreateAlias),
		"UpdateAlias":                         op(svc.UpdateAlias),
		"DeleteAlias":                         op(svc.DeleteAlias),
		"ListAliases":                         op(svc.ListAliases),
		"TagResource":                         op(svc.TagResource),
		"UntagResource":                       op(svc.UntagResource),
		"ListResourceTags":                    op(svc.ListResourceTags),
		"GetKeyPolicy":                        op(svc.GetKeyPolicy),
		"ListKeyPolicies":                     op(svc.ListKeyPolicies),
		"GetPublicKey":                        op(svc.GetPublicKey),
		"Sign":                                op(svc.Sign),
		"Verify":                              op(svc.Verify),
		"DeriveSharedSecret":                  op(svc.DeriveSharedSecret),
		"GenerateDataKeyPair":                 op(svc.GenerateDataKeyPair),
		"GenerateDataKeyPairWithoutPlaintext": op(svc.GenerateDataKeyPairWithoutPlaintext),
		"GenerateMac":                         op(svc.GenerateMac),
		"VerifyMac":                           op(svc.VerifyMac),
		"EnableKeyRotation":                   op(svc.EnableKeyRotation),
		"DisableKeyRotation":                  op(svc.DisableKeyRotation),
		"GetKeyRotationStatus":                op(svc.GetKeyRotationStatus),
		"RotateKeyOnDemand":                   op(svc.RotateKeyOnDemand),
		"ListKeyRotations":                    op(svc.ListKeyRotations),
		"GetKeyLastUsage":                     op(svc.GetKeyLastUsage),
		"GetParametersForImport":              op(svc.GetParametersForImport),
		"ImportKeyMaterial":                   op(svc.ImportKeyMaterial),
		"DeleteImportedKeyMaterial":           op(svc.DeleteImportedKeyMaterial),
		"PutKeyPolicy":                        op(svc.PutKeyPolicy),
		"CreateGrant":                         op(svc.CreateGrant),
		"ListGrants":                          op(svc.ListGrants),
		"ListRetirableGrants":                 op(svc.ListRetirableGrants),
		"RetireGrant":                         op(svc.RetireGrant),
		"RevokeGrant":                         op(svc.RevokeGrant),
		"ReplicateKey":                        op(svc.ReplicateKey),
		"UpdatePrimaryRegion":                 op(svc.UpdatePrimaryRegion),
	}
}

// unimplemented names the AWS KMS operations this build does not serve yet;
// they answer UnsupportedOperationException rather than "unknown".
var unimplemented = map[string]bool{
	"CreateCustomKeyStore": true, "UpdateCustomKeyStore": true, "DeleteCustomKeyStore": true,
	"DescribeCustomKeyStores": true, "ConnectCustomKeyStore": true, "DisconnectCustomKeyStore": true,
}

// decode reads a request body into in. An empty body is an empty object.
// What encoding/json would accept silently (invalid UTF-8, a member named
// twice) is refused first. Decoder errors are summarised, never echoed:
// they can quote input.
//
// The decoder is encoding/json's v1 semantics as implemented by
// encoding/json/v2 (github.com/go-json-experiment/json/v1, the same code
// Go ships as encoding/json under GOEXPERIMENT=jsonv2): identical results,
// a third of the CPU on an Encrypt body (BenchmarkDecodeEncrypt).
// decodeOptions are encoding/json's semantics except how errors are
// reported: v1's legacy reporting first checks the whole body's syntax
// (a second pass, a quarter of the decode) and goes on after a wrong type
// to report it last. Either way a body is refused or not alike, and a
// refused body's message comes from encoding/json itself below.
var decodeOptions = jsonv2.JoinOptions(jsonv1.DefaultOptionsV1(), jsonv1.ReportErrorsWithLegacySemantics(false))

func decode(body []byte, in any) error {
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
	if err := jsonv2.Unmarshal(body, in, decodeOptions); err != nil {
		// encoding/json's error names a mistyped member by its field, never
		// as the caller spelled it: the message is taken from it (a refused
		// body costs a second decode).
		err = json.Unmarshal(body, in)
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return &keyservice.Error{Code: codeSerialization, Message: "Member '" + typeErr.Field + "' has the wrong type or is out of range."}
		}
		return &keyservice.Error{Code: codeSerialization, Message: "The request body is not valid JSON for this operation (malformed JSON, wrong member types, or invalid base64)."}
	}
	return nil
}
