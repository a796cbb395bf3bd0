package auditapi

import (
	"encoding/base64"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/projections/cloudtrail"
	"github.com/keyledger/keyledger/projections/keystate"
)

// KeySummary is one key of a key listing: what a console's key table
// shows and filters on.
type KeySummary struct {
	KeyID                string            `json:"keyId"`
	Arn                  string            `json:"arn"`
	Description          string            `json:"description"`
	KeyState             string            `json:"keyState"`
	KeySpec              string            `json:"keySpec"`
	KeyUsage             string            `json:"keyUsage"`
	Origin               string            `json:"origin"`
	CreationDate         time.Time         `json:"creationDate"`
	DeletionDate         *time.Time        `json:"deletionDate,omitempty"`
	RotationPeriodInDays int               `json:"rotationPeriodInDays,omitempty"`
	Aliases              []string          `json:"aliases"`
	Tags                 map[string]string `json:"tags"`
}

// KeyList is a page of a key listing: Total keys matched the filters,
// NextMarker (when set) asks for the page after this one.
type KeyList struct {
	Keys       []KeySummary `json:"keys"`
	Total      int          `json:"total"`
	NextMarker string       `json:"nextMarker,omitempty"`
}

const (
	defaultKeyPage = 100
	maxKeyPage     = 1000
)

// keyFilter is what a key listing asks for; empty fields match every key.
type keyFilter struct {
	state, spec, usage string
	alias              string // part of an alias name
	tagKey, tagValue   string // a tag key, and its value when tagHasValue
	tagHasValue        bool
	text               string // part of the id, description or an alias, any case
}

func (f keyFilter) match(k keystate.Key, aliases []string) bool {
	if f.state != "" && string(k.State) != f.state || f.spec != "" && string(k.Spec) != f.spec ||
		f.usage != "" && string(k.Usage) != f.usage {
		return false
	}
	if f.alias != "" && !slices.ContainsFunc(aliases, func(a string) bool { return strings.Contains(a, f.alias) }) {
		return false
	}
	if f.tagKey != "" {
		v, ok := k.Tags[f.tagKey]
		if !ok || f.tagHasValue && v != f.tagValue {
			return false
		}
	}
	if f.text != "" {
		t := strings.ToLower(f.text)
		if !strings.Contains(k.ID, t) && !strings.Contains(strings.ToLower(k.Description), t) &&
			!slices.ContainsFunc(aliases, func(a string) bool { return strings.Contains(strings.ToLower(a), t) }) {
			return false
		}
	}
	return true
}

// keyList answers GET /audit/keys?state=&spec=&usage=&alias=&tag=<k>[=<v>]&q=&marker=&limit=:
// the caller's account's keys as they are now, with their aliases and tags,
// filtered, in key id order, a page at a time. It reads the live key state
// (no walk over the ledger), so a console can list and filter thousands of
// keys in one request where ListKeys would need a DescribeKey per key.
func (a *API) keyList(c *fiber.Ctx, caller keyservice.Caller) error {
	if err := a.svc.AuthorizeAudit(caller, "keyledger:ReadAudit", "*"); err != nil {
		return err
	}
	if a.reports == nil {
		return &keyservice.Error{Code: keyservice.CodeUnsupportedOperation, Message: "This instance keeps no live key state to list."}
	}
	limit, err := intParam(c, "limit", defaultKeyPage)
	if err != nil {
		return err
	}
	if limit < 1 || limit > maxKeyPage {
		return bad("limit must be between 1 and " + strconv.Itoa(maxKeyPage))
	}
	f := keyFilter{state: c.Query("state"), spec: c.Query("spec"), usage: c.Query("usage"),
		alias: c.Query("alias"), text: c.Query("q")}
	if t := c.Query("tag"); t != "" {
		f.tagKey, f.tagValue, f.tagHasValue = strings.Cut(t, "=")
	}
	marker := c.Query("marker")
	state, _ := a.reports.Live()
	keys := state.Keys(caller.Account)
	aliases := map[string][]string{}
	for _, al := range state.Aliases(caller.Account, "") {
		aliases[al.KeyID] = append(aliases[al.KeyID], al.Name)
	}
	out := KeyList{Keys: []KeySummary{}}
	for _, k := range keys {
		if !f.match(k, aliases[k.ID]) {
			continue
		}
		out.Total++
		if k.ID <= marker {
			continue
		}
		if len(out.Keys) == int(limit) {
			out.NextMarker = out.Keys[len(out.Keys)-1].KeyID
			continue // still counting the total
		}
		out.Keys = append(out.Keys, a.summary(k, aliases[k.ID]))
	}
	return c.JSON(out)
}

func (a *API) summary(k keystate.Key, aliases []string) KeySummary {
	s := KeySummary{KeyID: k.ID, Arn: "arn:aws:kms:" + k.Region + ":" + k.Account + ":key/" + k.ID,
		Description: k.Description, KeyState: string(k.State), KeySpec: string(k.Spec), KeyUsage: string(k.Usage),
		Origin: k.Origin, CreationDate: k.Created, RotationPeriodInDays: k.RotationPeriodDays,
		Aliases: aliases, Tags: k.Tags}
	if s.Aliases == nil {
		s.Aliases = []string{}
	}
	if s.Tags == nil {
		s.Tags = map[string]string{}
	}
	if !k.DeletionDate.IsZero() {
		d := k.DeletionDate
		s.DeletionDate = &d
	}
	return s
}

// KeyUsage is a key's successful cryptographic operations per UTC day.
type KeyUsage struct {
	KeyID string         `json:"keyId"`
	Days  map[string]int `json:"days"` // YYYY-MM-DD → operations
}

// keyUsage answers GET /audit/keys/<key id>/usage: the key's daily usage,
// from the live aggregates (no walk over its events, however many).
func (a *API) keyUsage(c *fiber.Ctx, caller keyservice.Caller) error {
	keyID := c.Params("key")
	arn := "arn:aws:kms:" + a.region + ":" + caller.Account + ":key/" + keyID
	if err := a.svc.AuthorizeAudit(caller, "keyledger:ReadAudit", arn); err != nil {
		return err
	}
	if a.reports == nil {
		return &keyservice.Error{Code: keyservice.CodeUnsupportedOperation, Message: "This instance keeps no live usage figures."}
	}
	_, agg := a.reports.Live()
	days, account := agg.KeyUsage(keyID)
	if account != caller.Account || days == nil {
		days = map[string]int{} // another account's key shows nothing
	}
	return c.JSON(KeyUsage{KeyID: strings.Clone(keyID), Days: days})
}

// OneEvent is one ledger event: its exact stored bytes (what the Merkle
// tree's leaf hashes) and its CloudTrail record.
type OneEvent struct {
	Index      uint64            `json:"index"`
	Raw        string            `json:"raw"` // base64
	CloudTrail cloudtrail.Record `json:"cloudTrail"`
}

var errFound = errors.New("found")

// oneEvent answers GET /audit/events/<index>: one event of the caller's
// account. Another account's event is not found.
func (a *API) oneEvent(c *fiber.Ctx, caller keyservice.Caller) error {
	index, err := strconv.ParseUint(c.Params("index"), 10, 64)
	if err != nil {
		return bad("the event index must be a non-negative integer")
	}
	var found *OneEvent
	var keyID, account string
	err = a.history.EventsFrom(c.UserContext(), index, func(r event.Record) error {
		if r.Pos == index {
			found = &OneEvent{Index: index, Raw: base64.StdEncoding.EncodeToString(r.Raw), CloudTrail: cloudtrail.Render(r)}
			keyID, account = r.Event.KeyID, r.Event.Account
		}
		return errFound
	})
	if err != nil && !errors.Is(err, errFound) {
		return err
	}
	notFound := &keyservice.Error{Code: keyservice.CodeNotFound, Message: "Event " + strconv.FormatUint(index, 10) + " is not in your account's ledger."}
	if found == nil || account != caller.Account {
		if err := a.svc.AuthorizeAudit(caller, "keyledger:ReadAudit", "*"); err != nil {
			return err
		}
		return notFound
	}
	resource := "*"
	if keyID != "" {
		resource = "arn:aws:kms:" + a.region + ":" + caller.Account + ":key/" + keyID
	}
	if err := a.svc.AuthorizeAudit(caller, "keyledger:ReadAudit", resource); err != nil {
		return err
	}
	return c.JSON(found)
}
