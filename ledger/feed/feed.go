package feed

import (
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/internal/streamname"
)

// Feed is the live feed of one ledger stream (see the package doc).
type Feed struct {
	nc     *nats.Conn
	prefix string
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
		msg := &nats.Msg{Subject: f.Subject(r.Event), Data: r.Raw, Header: nats.Header{}}
		msg.Header.Set(indexHeader, fmt.Sprint(r.Pos))
		if err := f.nc.PublishMsg(msg); err != nil {
			return err
		}
	}
	return nil
}

// Subscribe calls fn for every live event matching filter until the
// subscription is drained.
func (f *Feed) Subscribe(filter string, fn func(index uint64, raw []byte)) (*nats.Subscription, error) {
	return f.nc.Subscribe(filter, func(m *nats.Msg) {
		var idx uint64
		fmt.Sscan(m.Header.Get(indexHeader), &idx)
		fn(idx, m.Data)
	})
}
