package keyservice

import (
	"context"
	"errors"
	"maps"
	"unicode"
	"unicode/utf8"

	"github.com/keyledger/keyledger/ledger"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/writer"
)

// Writers. Every instance signs the ledger with its own writer key. The
// first instance of a ledger registers its own; every later one is
// registered by an operator, through an instance that is registered
// already (RegisterWriter, `keyledger writer register`): a NATS
// credential, or a copied key file, never makes anyone a writer. An
// instance whose key is not registered serves nothing until it is (it
// answers errNotRegistered) and needs no restart once it is.
//
// An operator revokes a writer (RevokeWriter, `keyledger writer revoke`)
// through another registered instance, with the same authority: from the
// revocation on, every message that writer's key signs is quarantined, and
// the instance holding it serves nothing again (errRevoked). A revoked key
// is never registered again; the instance is given a new key.

// RegisteredWriter is the answer to RegisterWriter.
type RegisteredWriter struct {
	WriterID     string `json:"writerId"`
	RegisteredBy string `json:"registeredBy,omitempty"`
	// Already is true when the key was registered before: nothing was
	// recorded.
	Already bool `json:"already,omitempty"`
}

// errRevoked is what an instance whose writer key was revoked answers:
// retryable elsewhere (503), and saying what to do.
var errRevoked = &Error{Code: "ServiceUnavailableException",
	Message: "This keyledger instance's writer key was revoked, so it can record nothing; " +
		"an operator gives it a new writer key and registers that. Retry on another instance."}

// errNotRegistered is what an instance whose writer key is not registered
// answers: retryable (503), and saying what to do.
var errNotRegistered = &Error{Code: "ServiceUnavailableException",
	Message: "This keyledger instance's writer key is not registered in the ledger yet, so it can record nothing; " +
		"an operator registers it with `keyledger writer register` against a registered instance. Retry on another instance."}

// RegisterWriter registers another instance's writer public key (base64
// Ed25519, as `keyledger writer pubkey` prints it), recorded as a
// WriterRegistered event this instance signs. It needs
// keyledger:RegisterWriter, in the operator account: a writer's signature
// is accepted on every chain, so on every account's keys. Registering a key twice records nothing the
// second time; a revoked key is refused.
func (s *Service) RegisterWriter(ctx context.Context, c Caller, publicKey string) (RegisteredWriter, error) {
	return changing(ctx, s, func(ctx context.Context) (RegisteredWriter, error) {
		touch(ctx, servicePartition)
		ev := s.newEvent(c, "RegisterWriter")
		if err := s.authorizeOperator(c, "keyledger:RegisterWriter"); err != nil {
			return RegisteredWriter{}, s.refuse(ctx, ev, err)
		}
		pub, err := writer.ParsePublic(publicKey)
		if err != nil {
			return RegisteredWriter{}, s.refuse(ctx, ev, errorf(CodeValidation, "The public key must be a base64 Ed25519 public key (keyledger writer pubkey prints it)."))
		}
		id := writer.ID(pub)
		if s.writers != nil {
			if _, gone := s.writers.Revoked()[id]; gone {
				// The fold would register nothing: say so rather than record it.
				return RegisteredWriter{}, s.refuse(ctx, ev, errorf(CodeValidation,
					"Writer %s was revoked, and a revoked key is never registered again; give the instance a new writer key and register that.", id))
			}
		}
		if s.writers != nil && s.writers.Registered(id) {
			return RegisteredWriter{WriterID: id, Already: true}, s.record(ctx, ev)
		}
		ev.Body = &event.WriterRegistered{WriterID: id, PublicKey: publicKey, RegisteredBy: s.writerID}
		if err := s.record(ctx, ev); err != nil {
			return RegisteredWriter{}, err
		}
		return RegisteredWriter{WriterID: id, RegisteredBy: s.writerID}, nil
	})
}

// Writers lists the registered writers (ID → public key), for whoever may
// register them (the operator account's principals).
func (s *Service) Writers(c Caller) (map[string]string, error) {
	if err := s.authorizeOperator(c, "keyledger:RegisterWriter"); err != nil {
		return nil, err
	}
	if s.writers == nil {
		return map[string]string{}, nil
	}
	return s.writers.Writers(), nil
}

// mayWrite reports whether the ledger accepts what this instance signs:
// false once its writer key is revoked, or while it is not registered.
// Without writer keys (an unsigned ledger) it may.
func (s *Service) mayWrite() bool {
	return s.writers == nil || s.writerID == "" || s.writers.Registered(s.writerID)
}

// notRegistered reports whether err is the ledger refusing an append
// because this instance's writer key is not registered.
func notRegistered(err error) bool { return errors.Is(err, ledger.ErrNotRegistered) }

// revoked reports whether err is the ledger refusing an append, or
// quarantining one it published (the revocation was stored before this
// instance folded it), because this instance's writer key is revoked.
func revoked(err error) bool {
	return errors.Is(err, ledger.ErrRevoked) || errors.Is(err, chain.ErrRevokedWriter)
}

// RevokeWriterInput names the writer to revoke, by ID or by public key
// (one of them), and the operator's optional reason (recorded in the
// ledger: at most event.MaxRevokeReason bytes of printable text, never a
// secret).
type RevokeWriterInput struct {
	WriterID  string `json:"writerId,omitempty"`
	PublicKey string `json:"publicKey,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

// RevokedWriter is the answer to RevokeWriter.
type RevokedWriter struct {
	WriterID  string `json:"writerId"`
	RevokedBy string `json:"revokedBy,omitempty"`
	// Already is true when the writer was revoked before: nothing was
	// recorded.
	Already bool `json:"already,omitempty"`
}

// RevokeWriter revokes a registered writer, recorded as a WriterRevoked
// event this instance signs on the service's control chain (where
// registrations go, so concurrent registrations and revocations are
// linearized: of two instances revoking each other, the one that loses
// the race finds itself revoked and records nothing). It needs
// keyledger:RevokeWriter in the operator account, and refuses this
// instance's own writer (revoke it through another instance), the last
// writer (register its successor first) and an unknown writer
// (NotFoundException). Revoking a revoked writer records nothing.
func (s *Service) RevokeWriter(ctx context.Context, c Caller, in RevokeWriterInput) (RevokedWriter, error) {
	return changing(ctx, s, func(ctx context.Context) (RevokedWriter, error) {
		touch(ctx, servicePartition)
		ev := s.newEvent(c, "RevokeWriter")
		if err := s.authorizeOperator(c, "keyledger:RevokeWriter"); err != nil {
			return RevokedWriter{}, s.refuse(ctx, ev, err)
		}
		id, err := revokeTarget(in)
		if err != nil {
			return RevokedWriter{}, s.refuse(ctx, ev, err)
		}
		if s.writers == nil {
			return RevokedWriter{}, s.refuse(ctx, ev, errorf(CodeNotFound, "Writer %s is not registered.", id))
		}
		if r, ok := s.writers.Revoked()[id]; ok {
			return RevokedWriter{WriterID: id, RevokedBy: r.By, Already: true}, s.record(ctx, ev)
		}
		switch {
		case !s.writers.Registered(id):
			return RevokedWriter{}, s.refuse(ctx, ev, errorf(CodeNotFound, "Writer %s is not registered.", id))
		case id == s.writerID:
			return RevokedWriter{}, s.refuse(ctx, ev, errorf(CodeValidation,
				"Writer %s is the key of the instance you sent this request to, which would record the revocation; send it to another registered instance.", id))
		case len(s.writers.Writers()) < 2:
			return RevokedWriter{}, s.refuse(ctx, ev, errorf(CodeInvalidState,
				"Writer %s is the ledger's last writer; register another writer before revoking it.", id))
		}
		ev.Body = &event.WriterRevoked{WriterID: id, RevokedBy: s.writerID, Reason: in.Reason}
		if err := s.record(ctx, ev); err != nil {
			return RevokedWriter{}, err
		}
		return RevokedWriter{WriterID: id, RevokedBy: s.writerID}, nil
	})
}

// revokeTarget is the writer ID in names, checked, with its reason.
func revokeTarget(in RevokeWriterInput) (string, error) {
	if err := checkRevokeReason(in.Reason); err != nil {
		return "", err
	}
	switch {
	case in.WriterID != "" && in.PublicKey != "":
		return "", errorf(CodeValidation, "Name the writer by writerId or by publicKey, not both.")
	case in.PublicKey != "":
		pub, err := writer.ParsePublic(in.PublicKey)
		if err != nil {
			return "", errorf(CodeValidation, "The public key must be a base64 Ed25519 public key (keyledger writer pubkey prints it).")
		}
		return writer.ID(pub), nil
	case !validWriterID(in.WriterID):
		return "", errorf(CodeValidation, "The writer ID must be 32 lowercase hexadecimal digits (keyledger writer list prints them).")
	}
	return in.WriterID, nil
}

// validWriterID reports whether id has the form writer.ID gives.
func validWriterID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, r := range id {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return true
}

// checkRevokeReason refuses a reason the ledger should not hold: too long,
// not UTF-8, or with control characters (which would forge lines in logs
// and reports). The message never repeats it.
func checkRevokeReason(reason string) error {
	if len(reason) > event.MaxRevokeReason {
		return errorf(CodeValidation, "The reason must be at most %d bytes.", event.MaxRevokeReason)
	}
	if !utf8.ValidString(reason) {
		return errorf(CodeValidation, "The reason must be UTF-8 text.")
	}
	for _, r := range reason {
		if !unicode.IsPrint(r) {
			return errorf(CodeValidation, "The reason must be printable text, without control characters or line breaks.")
		}
	}
	return nil
}

// WriterList is the answer to ListWriters: the registered writers (ID →
// public key) and the revoked ones.
type WriterList struct {
	Writers map[string]string           `json:"writers"`
	Revoked map[string]chain.Revocation `json:"revoked,omitempty"`
}

// ListWriters lists the registered and the revoked writers, for whoever
// may register them.
func (s *Service) ListWriters(c Caller) (WriterList, error) {
	w, err := s.Writers(c)
	if err != nil {
		return WriterList{}, err
	}
	out := WriterList{Writers: w}
	if s.writers != nil && len(s.writers.Revoked()) > 0 {
		out.Revoked = maps.Clone(s.writers.Revoked())
	}
	return out, nil
}
