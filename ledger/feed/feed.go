package feed

import (
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/internal/streamname"
)

// Feed is the live feed of one ledger stream (see the package doc).
type Feed struct {
	nc     *nats.Conn
	prefix string
	heard  func(subject string) bool // see OnlyHeard; nil: publish every event
}

// indexHeader carries an announced event's position (event.Record.Pos).
const indexHeader = "Keyledger-Index"

// New returns the feed of a ledger stream.
func New(nc *nats.Conn, ledgerStream string) *Feed {
	prefix := "keyledger.audit"
	if ledgerStream != "" && ledgerStream != streamname.Default {
		prefix += "." + ledgerStream
	}
	return &Feed{nc: nc, prefix: prefix}
}

func token(s string) string {
	if s == "" {
		return "_"
	}
	return s
}

// Subject is where an event is announced.
func (f *Feed) Subject(e *event.Event) string {
	return f.prefix + "." + token(e.Account) + "." + token(e.KeyID) + "." + token(e.Operation)
}

// Filter is the subject that selects events; empty parts match all.
func (f *Feed) Filter(account, keyID, op string) string {
	star := func(s string) string {
		if s == "" {
			return "*"
		}
		return s
	}
	return f.prefix + "." + star(account) + "." + star(keyID) + "." + star(op)
}

// Publish announces committed records.
func (f *Feed) Publish(recs []event.Record) error {
	for _, r := range recs {
		subject := f.Subject(r.Event)
		if f.heard != nil && !f.heard(subject) {
			continue
		}
		msg := &nats.Msg{Subject: subject, Data: r.Raw, Header: nats.Header{indexHeader: {strconv.FormatUint(r.Pos, 10)}}}
		if err := f.nc.PublishMsg(msg); err != nil {
			return err
		}
	}
	return nil
}

// OnlyHeard makes Publish skip an event no one listens for, as heard
// tells from its subject. The embedded server can tell (counting
// subscribers in auditors' accounts and on the servers of its cluster);
// core NATS would drop such a message anyway, so what subscribers get is
// the same, without building, sending and routing every event for none.
func (f *Feed) OnlyHeard(heard func(subject string) bool) { f.heard = heard }

// Subscribe calls fn for every live event matching filter until the
// subscription is drained.
func (f *Feed) Subscribe(filter string, fn func(index uint64, raw []byte)) (*nats.Subscription, error) {
	return f.nc.Subscribe(filter, func(m *nats.Msg) {
		var idx uint64
		fmt.Sscan(m.Header.Get(indexHeader), &idx)
		fn(idx, m.Data)
	})
}
