package keyservice

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/keyledger/keyledger/crypto/asymmetric"
)

// Code is an AWS KMS error code (the "__type" a client sees).
type Code string

const (
	CodeAccessDenied         Code = "AccessDeniedException"
	CodeAlreadyExists        Code = "AlreadyExistsException"
	CodeInvalidGrantToken    Code = "InvalidGrantTokenException"
	CodeInvalidGrantID       Code = "InvalidGrantIdException"
	CodeCustomKeyStoreNotFnd Code = "CustomKeyStoreNotFoundException"
	CodeDisabled             Code = "DisabledException"
	CodeDryRun               Code = "DryRunOperationException"
	CodeIncorrectKey         Code = "IncorrectKeyException"
	CodeInternal             Code = "KMSInternalException"
	CodeInvalidAliasName     Code = "InvalidAliasNameException"
	CodeInvalidCiphertext    Code = "InvalidCiphertextException"
	CodeInvalidSignature     Code = "KMSInvalidSignatureException"
	CodeInvalidMac           Code = "KMSInvalidMacException"
	CodeInvalidImportToken   Code = "InvalidImportTokenException"
	CodeExpiredImportToken   Code = "ExpiredImportTokenException"
	CodeIncorrectKeyMaterial Code = "IncorrectKeyMaterialException"
	CodeInvalidKeyUsage      Code = "InvalidKeyUsageException"
	CodeInvalidMarker        Code = "InvalidMarkerException"
	CodeInvalidState         Code = "KMSInvalidStateException"
	CodeLimitExceeded        Code = "LimitExceededException"
	CodeMalformedPolicy      Code = "MalformedPolicyDocumentException"
	CodeNotFound             Code = "NotFoundException"
	CodeNotAuthorized        Code = "NotAuthorizedException"
	CodeTag                  Code = "TagException"
	CodeUnsupportedOperation Code = "UnsupportedOperationException"
	CodeValidation           Code = "ValidationException"
)

// Error is a refusal with the AWS code and a message safe to show the
// caller. Messages never contain secrets.
type Error struct {
	Code    Code
	Message string
	Reason  string // for the audit record only, never sent
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

func errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// errInternal is what callers see when the ledger or the material store
// fails: nothing happened, and the SDK may retry.
var errInternal = &Error{Code: CodeInternal, Message: "The request could not be completed because of an internal error. Nothing was changed; retry the request."}

// AsError returns err as an *Error, turning anything unexpected into
// KMSInternalException so internal text never reaches a client.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var ie *asymmetric.InputError
	if errors.As(err, &ie) {
		return &Error{Code: CodeValidation, Message: ie.Reason}
	}
	if me := asMaterialError(err); me != nil {
		return me
	}
	if errors.Is(err, asymmetric.ErrUnsupported) {
		return &Error{Code: CodeUnsupportedOperation, Message: "This combination of key and message type is not supported by keyledger."}
	}
	return errInternal
}

// AWS's wording for member constraint failures: "1 validation error
// detected: Value '<value>' at '<member>' failed to satisfy constraint: …".
// The offending value is quoted as AWS quotes it, except for blobs and
// secrets (plaintexts, grant tokens), which AWS and keyledger never echo:
// those say "Value at '<member>'".
func constraint(member string, value *string, rule string) *Error {
	v := " "
	if value != nil {
		v = " '" + *value + "' "
	}
	return &Error{Code: CodeValidation, Message: "1 validation error detected: Value" + v + "at '" + member + "' failed to satisfy constraint: " + rule}
}

func missing(member string) *Error {
	return errorf(CodeValidation, "1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null", member)
}

// tooLong and tooShort are length failures of a string member, whose value
// is shown.
func tooLong(member, v string, max int) *Error {
	return constraint(member, &v, fmt.Sprintf("Member must have length less than or equal to %d", max))
}

func tooShort(member, v string, min int) *Error {
	return constraint(member, &v, fmt.Sprintf("Member must have length greater than or equal to %d", min))
}

// lengthBetween is a length failure of a list element.
func lengthBetween(member, v string, min, max int) *Error {
	return constraint(member, &v, fmt.Sprintf("Member must have length between %d and %d", min, max))
}

// blobTooLong and blobTooShort are length failures of a blob or secret
// member, whose value is never shown.
func blobTooLong(member string, max int) *Error {
	return constraint(member, nil, fmt.Sprintf("Member must have length less than or equal to %d", max))
}

func blobTooShort(member string, min int) *Error {
	return constraint(member, nil, fmt.Sprintf("Member must have length greater than or equal to %d", min))
}

func outOfRange(member string, v int64, min, max int64) *Error {
	s := strconv.FormatInt(v, 10)
	if v < min {
		return constraint(member, &s, fmt.Sprintf("Member must have value greater than or equal to %d", min))
	}
	return constraint(member, &s, fmt.Sprintf("Member must have value less than or equal to %d", max))
}

// notInEnum lists the allowed values as AWS does: "[RAW, DIGEST]".
func notInEnum(member, v string, allowed ...string) *Error {
	return constraint(member, &v, "Member must satisfy enum value set: ["+strings.Join(allowed, ", ")+"]")
}

func badPattern(member, v, pattern string) *Error {
	return constraint(member, &v, "Member must satisfy regular expression pattern: "+pattern)
}
