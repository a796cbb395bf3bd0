package awsjson

import (
	"strings"

	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/gateway/throttle"
)

// codeThrottling is AWS's throttling error: HTTP 400, which every SDK
// retries with backoff.
const codeThrottling = "ThrottlingException"

var errThrottled = &keyservice.Error{Code: codeThrottling,
	Message: "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls."}

// admit charges a decoded request to its account's quota and, with fair
// sharing, waits for its turn (see throttle.Fair). It runs after
// authentication (the account and principal are known) and decoding (the
// algorithm or key spec names what the request costs; the signature check
// already read the whole body), before any key is looked up or any work is
// done. A refusal is noted for the ledger summary the node records, not
// appended here: an append per throttled request would cost what the
// throttle saves.
func (s *Server) admit(opName string, caller *keyservice.Caller) func(in any) (func(), error) {
	if s.limiter == nil {
		return admitAll
	}
	return func(in any) (func(), error) {
		arg := argumentOf(in)
		family := throttle.FamilyOf(opName, arg)
		release, refused := s.limiter.Admit(caller.Account, family, throttle.CostOf(opName, arg), throttle.Request{
			Operation: opName, PrincipalARN: caller.PrincipalARN, AccessKeyID: caller.AccessKeyID,
			SourceIP: caller.SourceIP, UserAgent: caller.UserAgent, RequestID: caller.RequestID})
		if refused != "" {
			s.observer.Throttled(refused)
			return nil, errThrottled
		}
		return release, nil
	}
}

func admitAll(any) (func(), error) { return noRelease, nil }

func noRelease() {}

// admitAudit charges a signed request beside the KMS API (audit, reports,
// root administration) to the account's keyledger-audit quota: some of
// these walk much of the ledger, so they must not be free to repeat.
func (s *Server) admitAudit(route string, caller *keyservice.Caller) *keyservice.Error {
	if s.limiter == nil || s.limiter.Allow(caller.Account, throttle.Audit) {
		return nil
	}
	s.limiter.Refused(caller.Account, throttle.Audit, throttle.Request{Operation: route, PrincipalARN: caller.PrincipalARN,
		AccessKeyID: caller.AccessKeyID, SourceIP: caller.SourceIP, UserAgent: caller.UserAgent, RequestID: caller.RequestID})
	s.observer.Throttled(throttle.Audit)
	return keyservice.AsError(errThrottled)
}

// argumentOf names what decides a request's quota family and cost: its
// encryption or signing algorithm, or the spec of the key it generates.
func argumentOf(in any) string {
	switch in := in.(type) {
	case *keyservice.EncryptInput:
		return in.EncryptionAlgorithm
	case *keyservice.DecryptInput:
		return in.EncryptionAlgorithm
	case *keyservice.ReEncryptInput:
		if strings.HasPrefix(in.DestinationEncryptionAlgorithm, "RSAES_") {
			return in.DestinationEncryptionAlgorithm
		}
		return in.SourceEncryptionAlgorithm
	case *keyservice.SignInput:
		return in.SigningAlgorithm
	case *keyservice.VerifyInput:
		return in.SigningAlgorithm
	case *keyservice.GenerateDataKeyPairInput:
		return in.KeyPairSpec
	case *keyservice.CreateKeyInput:
		if in.KeySpec == "" {
			return in.CustomerMasterKeySpec
		}
		return in.KeySpec
	case *keyservice.GetParametersForImportInput:
		return in.WrappingKeySpec
	case *keyservice.ImportKeyMaterialInput:
		return "RSAES_OAEP_SHA_256" // unwraps with the RSA wrapping key
	}
	return ""
}
