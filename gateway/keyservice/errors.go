package keyservice

import (
	"errors"
	"fmt"

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
	if errors.Is(err, asymmetric.ErrUnsupported) {
		return &Error{Code: CodeUnsupportedOperation, Message: "This combination of key and message type is not supported by keyledger."}
	}
	return errInternal
}

// AWS's wording for member constraint failures.
func missing(member string) *Error {
	return errorf(CodeValidation, "1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null", member)
}

func tooLong(member string, max int) *Error {
	return errorf(CodeValidation, "1 validation error detected: Value at '%s' failed to satisfy constraint: Member must have length less than or equal to %d", member, max)
}

func tooShort(member string, min int) *Error {
	return errorf(CodeValidation, "1 validation error detected: Value at '%s' failed to satisfy constraint: Member must have length greater than or equal to %d", member, min)
}

func outOfRange(member string, v int64, min, max int64) *Error {
	if v < min {
		return errorf(CodeValidation, "1 validation error detected: Value '%d' at '%s' failed to satisfy constraint: Member must have value greater than or equal to %d", v, member, min)
	}
	return errorf(CodeValidation, "1 validation error detected: Value '%d' at '%s' failed to satisfy constraint: Member must have value less than or equal to %d", v, member, max)
}

func notInEnum(member, v string, allowed ...string) *Error {
	return errorf(CodeValidation, "1 validation error detected: Value '%s' at '%s' failed to satisfy constraint: Member must satisfy enum value set: %v", v, member, allowed)
}
