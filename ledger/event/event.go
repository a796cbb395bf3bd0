package event

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Version is the envelope encoding version written by this build.
const Version = 1

// Hash is the SHA-256 of an event's stored bytes.
type Hash [32]byte

// Of returns the hash of an event's exact stored bytes.
func Of(raw []byte) Hash { return sha256.Sum256(raw) }

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// EventID is the event's id in UUID form (its hash's first 16 bytes), as
// CloudTrail records carry one.
func (h Hash) EventID() string {
	x := hex.EncodeToString(h[:16])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// ParseHash reads a hash in its hex form.
func ParseHash(s string) (Hash, error) {
	var h Hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("event: malformed hash %q", s)
	}
	copy(h[:], b)
	return h, nil
}

// Actor is who made the request an event records. Service events (those the
// scheduler makes) have none.
type Actor struct {
	AccessKeyID  string `json:"accessKeyId,omitempty"`
	PrincipalARN string `json:"principalArn,omitempty"`
	SourceIP     string `json:"sourceIp,omitempty"`
	UserAgent    string `json:"userAgent,omitempty"`
	RequestID    string `json:"requestId,omitempty"`
}

// Failure is the AWS error a refused request was answered with.
type Failure struct {
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	// Reason is for the audit only: which policy statement denied, or that
	// none allowed.
	Reason string `json:"reason,omitempty"`
}

// Event is one ledger entry: the envelope and a typed body.
type Event struct {
	Index     uint64    // dense position on its chain, from 0
	Prev      Hash      // hash of the previous event's bytes on its chain
	Chain     string    // the chain ("w.<writer>", "c.<p>"); "" for the legacy chain
	Time      time.Time // from the injected clock
	Operation string    // the AWS eventName, e.g. "Encrypt" or "DeleteKey"
	Account   string    // the account that owns the resource
	Region    string
	KeyID     string // the key the event concerns, if any
	Actor     *Actor
	Error     *Failure // set when the request was refused
	Body      Body
}

// Body is an event's type-specific part.
type Body interface {
	Type() string
	encode(w *writer)
}

// Refused reports whether the event records a refused request.
func (e *Event) Refused() bool { return e.Error != nil && e.Error.Code != "" }

// AppendEncoded appends the event's canonical bytes to dst.
func (e *Event) AppendEncoded(dst []byte) []byte {
	w := newWriter(dst)
	w.open()
	w.uintAlways("v", Version)
	w.uintAlways("index", e.Index)
	w.hashAlways("prev", e.Prev)
	w.str("chain", e.Chain)
	w.timeAlways("time", e.Time)
	w.strAlways("type", e.Body.Type())
	w.strAlways("op", e.Operation)
	w.str("account", e.Account)
	w.str("region", e.Region)
	w.str("keyId", e.KeyID)
	if a := e.Actor; a != nil {
		w.object("actor", func(w *writer) {
			w.str("accessKeyId", a.AccessKeyID)
			w.str("principalArn", a.PrincipalARN)
			w.str("sourceIp", a.SourceIP)
			w.str("userAgent", a.UserAgent)
			w.str("requestId", a.RequestID)
		})
	}
	if f := e.Error; f != nil {
		w.object("error", func(w *writer) {
			w.str("code", f.Code)
			w.str("message", f.Message)
			w.str("reason", f.Reason)
		})
	}
	w.object("body", e.Body.encode)
	w.close()
	return w.b
}

// Link is the part of an event the hash chain needs.
type Link struct {
	Version int    `json:"v"`
	Index   uint64 `json:"index"`
	Prev    string `json:"prev"`
	Chain   string `json:"chain"`
}

// DecodeLink reads only the chain fields of an event's bytes.
func DecodeLink(raw []byte) (Link, Hash, error) {
	var l Link
	if err := json.Unmarshal(raw, &l); err != nil {
		return l, Hash{}, fmt.Errorf("event: undecodable: %w", err)
	}
	prev, err := ParseHash(l.Prev)
	if err != nil {
		return l, Hash{}, err
	}
	return l, prev, nil
}

type envelope struct {
	Version   int             `json:"v"`
	Index     uint64          `json:"index"`
	Prev      string          `json:"prev"`
	Chain     string          `json:"chain"`
	Time      string          `json:"time"`
	Type      string          `json:"type"`
	Operation string          `json:"op"`
	Account   string          `json:"account"`
	Region    string          `json:"region"`
	KeyID     string          `json:"keyId"`
	Actor     *Actor          `json:"actor"`
	Error     *Failure        `json:"error"`
	Body      json.RawMessage `json:"body"`
}

// Decode parses an event's stored bytes. Decoding is lenient (the bytes are
// what the hash covers, so nothing is re-encoded to check them).
func Decode(raw []byte) (*Event, error) {
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, fmt.Errorf("event: undecodable: %w", err)
	}
	if env.Version != Version {
		return nil, fmt.Errorf("event: unknown encoding version %d", env.Version)
	}
	prev, err := ParseHash(env.Prev)
	if err != nil {
		return nil, err
	}
	t, err := time.Parse(TimeFormat, env.Time)
	if err != nil {
		return nil, fmt.Errorf("event: bad time %q", env.Time)
	}
	body := newBody(env.Type)
	if u, ok := body.(*Unknown); ok {
		u.TypeName, u.Raw = env.Type, append([]byte(nil), env.Body...)
	} else if len(env.Body) > 0 {
		if err := json.Unmarshal(env.Body, body); err != nil {
			return nil, fmt.Errorf("event: %s body: %w", env.Type, err)
		}
	}
	return &Event{
		Index: env.Index, Prev: prev, Chain: env.Chain, Time: t, Operation: env.Operation,
		Account: env.Account, Region: env.Region, KeyID: env.KeyID,
		Actor: env.Actor, Error: env.Error, Body: body,
	}, nil
}

// ErrEmptyBatch is returned for a ledger message with no events.
var ErrEmptyBatch = errors.New("event: message holds no events")

// SplitBatch returns the events of one ledger message, without newlines.
// The slices alias data.
func SplitBatch(data []byte) ([][]byte, error) {
	if len(data) == 0 || data[len(data)-1] != '\n' {
		return nil, ErrEmptyBatch
	}
	lines := bytes.Split(data[:len(data)-1], []byte{'\n'})
	for _, l := range lines {
		if len(l) == 0 {
			return nil, errors.New("event: empty line in message")
		}
	}
	return lines, nil
}
