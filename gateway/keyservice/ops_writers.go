package keyservice

import (
	"context"
	"errors"

	"github.com/keyledger/keyledger/ledger"
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

// RegisteredWriter is the answer to RegisterWriter.
type RegisteredWriter struct {
	WriterID     string `json:"writerId"`
	RegisteredBy string `json:"registeredBy,omitempty"`
	// Already is true when the key was registered before: nothing was
	// recorded.
	Already bool `json:"already,omitempty"`
}

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
// second time.
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

// notRegistered reports whether err is the ledger refusing an append
// because this instance's writer key is not registered.
func notRegistered(err error) bool { return errors.Is(err, ledger.ErrNotRegistered) }
