package awsjson

import (
	"github.com/keyledger/keyledger/gateway/keyservice"
)

// Protocol-level codes AWS uses that are not KMS operation errors.
const (
	codeUnknownOperation   = "UnknownOperationException"
	codeSerialization      = "SerializationException"
	codeMissingAuth        = "MissingAuthenticationTokenException"
	codeIncompleteSig      = "IncompleteSignatureException"
	codeInvalidSignature   = "InvalidSignatureException"
	codeUnrecognizedClient = "UnrecognizedClientException"
)

// statusOf is the one table from AWS error code to HTTP status. Client
// faults are 400; the codes AWS models as server faults are 5xx so SDK
// retryers treat them as retryable.
var statusOf = map[string]int{
	string(keyservice.CodeInternal): 500,
	"KeyUnavailableException":       500,
	"DependencyTimeoutException":    503,
	"ServiceUnavailableException":   503,
	codeMissingAuth:                 403,
	codeIncompleteSig:               403,
	codeUnknownOperation:            400,
}

func status(code string) int {
	if s, ok := statusOf[code]; ok {
		return s
	}
	return 400
}

// errorBody is AWS's JSON error shape. AWS itself uses a capital "Message"
// for some codes; SDKs read either.
type errorBody struct {
	Type    string `json:"__type"`
	Message string `json:"message"`
}
