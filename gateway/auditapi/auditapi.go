// Package auditapi serves keyledger's audit over HTTP beside the AWS API:
// signed checkpoints, inclusion and consistency proofs, live event
// subscriptions, time travel and compliance reports. Every endpoint needs a
// SigV4-signed request from a principal whose identity policies allow the
// keyledger action it names (keyledger:ReadAudit, keyledger:SubscribeAudit,
// keyledger:ReadReports).
//
// What a caller sees is its own account's: events, keys as of a time and
// reports cover the caller's account only. A report of every account is
// asked for explicitly (?scope=all) and needs keyledger:ReadAllAccounts
// besides. Checkpoints and Merkle proofs are of the one ledger all accounts
// share, and global by nature: they reveal the ledger's size and hashes,
// never an event's content.
package auditapi

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/keyledger/keyledger/gateway/awsjson"
	"github.com/keyledger/keyledger/gateway/keyservice"
	"github.com/keyledger/keyledger/ledger/chain"
	"github.com/keyledger/keyledger/ledger/checkpoint"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/projections/compliance"
	"github.com/keyledger/keyledger/projections/keystate"
	"github.com/keyledger/keyledger/projections/resume"
	"github.com/keyledger/keyledger/projections/timetravel"
)

// Checkpoints is the ledger's Merkle tree and its signed checkpoints (a
// *checkpoint.Checkpointer).
type Checkpoints interface {
	Tree() *merkle.Tree
	// Checkpoint returns a signed checkpoint covering the ledger as it is now.
	Checkpoint(ctx context.Context) ([]byte, error)
	// Newest returns the newest stored signed checkpoint and how many
	// are stored; Verifier is the key that verifies them.
	Newest(ctx context.Context) (signed []byte, stored uint64, err error)
	Verifier() string
}

// Chain is the verified hash chain as it stands (a *ledger.Ledger).
type Chain interface {
	Head() chain.Head
	// Quarantined counts the messages folding refused;
	// QuarantineReasons names the first few.
	Quarantined() uint64
	QuarantineReasons() []string
}

// Clock is the service's (injected) clock.
type Clock interface {
	Now() time.Time
}

// Reports is the instance's live projections a report reads (a
// *node.Node): nil means reports fold the ledger.
type Reports interface {
	Live() (*keystate.State, *compliance.Aggregates)
	// Integrity is the background chain verification's outcome, nil while
	// it has not finished.
	Integrity() *compliance.Integrity
}

// Past is where time travel starts (a *node.Node): the newest snapshot
// of the projections whose events all happened at or before t, nil when
// there is none. A nil Past means time travel folds from the first event.
type Past interface {
	ImageAt(ctx context.Context, t time.Time) (*resume.Image, error)
}

// Config wires the audit API.
type Config struct {
	Service     *keyservice.Service
	Checkpoints Checkpoints
	Chain       Chain
	History     History
	Hub         *Hub
	Clock       Clock
	Region      string
	Reports     Reports
	Past        Past
}

// API is the audit HTTP API.
type API struct {
	svc         *keyservice.Service
	checkpoints Checkpoints
	chain       Chain
	history     History
	hub         *Hub
	clock       Clock
	region      string
	reports     Reports
	past        Past
	done        chan struct{}
}

// Register adds the audit endpoints to srv.
func Register(srv *awsjson.Server, cfg Config) *API {
	a := &API{svc: cfg.Service, checkpoints: cfg.Checkpoints, chain: cfg.Chain, history: cfg.History, hub: cfg.Hub,
		clock: cfg.Clock, region: cfg.Region, reports: cfg.Reports, past: cfg.Past, done: make(chan struct{})}
	srv.Get("/audit/checkpoint", a.checkpoint)
	srv.Get("/audit/proof/inclusion", a.inclusion)
	srv.Get("/audit/proof/consistency", a.consistency)
	srv.Get("/audit/events", a.events)
	srv.Get("/audit/keys/:key", a.keyAsOf)
	srv.Get("/audit/keys", a.keyList)
	srv.Get("/audit/keys/:key/usage", a.keyUsage)
	srv.Get("/audit/events/:index", a.oneEvent)
	srv.Get("/reports/compliance", a.compliance)
	return a
}

// Close ends the live event streams.
func (a *API) Close() { close(a.done) }

func bad(msg string) error {
	return &keyservice.Error{Code: keyservice.CodeValidation, Message: msg}
}

// checkpoint answers the newest signed checkpoint (a signed note).
func (a *API) checkpoint(c *fiber.Ctx, caller keyservice.Caller) error {
	if err := a.svc.AuthorizeAudit(caller, "keyledger:ReadAudit", "*"); err != nil {
		return err
	}
	signed, err := a.checkpoints.Checkpoint(c.UserContext())
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "text/plain; charset=utf-8")
	return c.Send(signed)
}

// ProofResponse carries a proof and the tree hashes it connects.
type ProofResponse struct {
	Index   int64    `json:"index,omitempty"`
	Size    int64    `json:"size,omitempty"`
	OldSize int64    `json:"oldSize,omitempty"`
	NewSize int64    `json:"newSize,omitempty"`
	Root    string   `json:"root,omitempty"`
	OldRoot string   `json:"oldRoot,omitempty"`
	NewRoot string   `json:"newRoot,omitempty"`
	Proof   []string `json:"proof"`
}

func hashes(p []tlog.Hash) []string {
	out := make([]string, len(p))
	for i, h := range p {
		out[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	return out
}

func b64(h tlog.Hash) string { return base64.StdEncoding.EncodeToString(h[:]) }

func intParam(c *fiber.Ctx, name string, def int64) (int64, error) {
	v := c.Query(name)
	if v == "" {
		if def < 0 {
			return 0, bad("query parameter " + name + " is required")
		}
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, bad("query parameter " + name + " must be a non-negative integer")
	}
	return n, nil
}

// inclusion proves event ?index is in the tree of ?size events (default:
// the whole ledger now).
func (a *API) inclusion(c *fiber.Ctx, caller keyservice.Caller) error {
	if err := a.svc.AuthorizeAudit(caller, "keyledger:ReadAudit", "*"); err != nil {
		return err
	}
	tree := a.checkpoints.Tree()
	index, err := intParam(c, "index", -1)
	if err != nil {
		return err
	}
	size, err := intParam(c, "size", tree.Size())
	if err != nil {
		return err
	}
	proof, err := tree.Inclusion(index, size)
	if errors.Is(err, merkle.ErrRange) {
		return bad("index must be below size, and size at most the ledger's size")
	}
	if err != nil {
		return err // a stored tile failed its check: no proof rather than a wrong one
	}
	root, err := tree.Root(size)
	if err != nil {
		return err
	}
	return c.JSON(ProofResponse{Index: index, Size: size, Root: b64(root), Proof: hashes(proof)})
}

// consistency proves the tree of ?new events extends that of ?old events.
func (a *API) consistency(c *fiber.Ctx, caller keyservice.Caller) error {
	if err := a.svc.AuthorizeAudit(caller, "keyledger:ReadAudit", "*"); err != nil {
		return err
	}
	tree := a.checkpoints.Tree()
	oldSize, err := intParam(c, "old", -1)
	if err != nil {
		return err
	}
	newSize, err := intParam(c, "new", tree.Size())
	if err != nil {
		return err
	}
	proof, err := tree.Consistency(oldSize, newSize)
	if errors.Is(err, merkle.ErrRange) {
		return bad("need 1 <= old <= new <= the ledger's size")
	}
	if err != nil {
		return err
	}
	oldRoot, err := tree.Root(oldSize)
	if err != nil {
		return err
	}
	newRoot, err := tree.Root(newSize)
	if err != nil {
		return err
	}
	return c.JSON(ProofResponse{OldSize: oldSize, NewSize: newSize, OldRoot: b64(oldRoot), NewRoot: b64(newRoot), Proof: hashes(proof)})
}

// keyAsOf answers GET /audit/keys/<key id>?asOf=<RFC 3339>: the key's
// state, policy, grants and aliases then, and who could decrypt with it.
func (a *API) keyAsOf(c *fiber.Ctx, caller keyservice.Caller) error {
	keyID := c.Params("key")
	asOf := time.Now()
	if s := c.Query("asOf"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return bad("asOf must be an RFC 3339 time")
		}
		asOf = t
	}
	arn := "arn:aws:kms:" + a.region + ":" + caller.Account + ":key/" + keyID
	if err := a.svc.AuthorizeAudit(caller, "keyledger:ReadAudit", arn); err != nil {
		return err
	}
	f, err := a.folderAt(c.UserContext(), asOf)
	if err != nil {
		return err
	}
	ans := f.Describe(keyID, a.region)
	if ans.Key != nil && ans.Key.Arn != arn {
		ans = timetravel.Answer{AsOf: ans.AsOf, EventsFolded: ans.EventsFolded} // another account's key
	}
	ans.WhoCanDecrypt = ownAccount(ans, caller.Account)
	return c.JSON(ans)
}

// ownAccount keeps the accesses of the caller's account's principals, "*",
// and another account's principals named by one of the key's grants (the
// key's account wrote that name itself). The others come from trusting
// another account as a whole: listing them would name that account's users
// and tell which of its identity policies allow what, which is that
// account's to see.
func ownAccount(ans timetravel.Answer, account string) []timetravel.Access {
	return slices.DeleteFunc(ans.WhoCanDecrypt, func(a timetravel.Access) bool {
		if a.Principal == "*" || strings.HasPrefix(a.Principal, "arn:aws:iam::"+account+":") {
			return false
		}
		return ans.Key == nil || !slices.ContainsFunc(ans.Key.Grants, func(g timetravel.GrantView) bool {
			return g.Grantee == a.Principal && slices.Contains(g.Operations, "Decrypt")
		})
	})
}

// folderAt folds the ledger up to asOf: from the newest snapshot at or
// before it (any problem with snapshots only costs time), to the first
// event after it.
func (a *API) folderAt(ctx context.Context, asOf time.Time) (*timetravel.Folder, error) {
	f := timetravel.NewFolder(asOf)
	if a.past != nil {
		if im, err := a.past.ImageAt(ctx, asOf); err == nil && im != nil {
			if g, err := timetravel.Resume(asOf, im); err == nil {
				f = g
			}
		}
	}
	if err := a.history.EventsFrom(ctx, f.Next(), f.Fold); err != nil && !errors.Is(err, timetravel.ErrPassed) {
		return nil, err
	}
	return f, nil
}

// compliance answers GET /reports/compliance?format=json|csv|html&scope=account|all:
// the caller's account's report, or (scope=all, with
// keyledger:ReadAllAccounts) every account's.
func (a *API) compliance(c *fiber.Ctx, caller keyservice.Caller) error {
	if err := a.svc.AuthorizeAudit(caller, "keyledger:ReadReports", "*"); err != nil {
		return err
	}
	format := c.Query("format", "json")
	if format != "json" && format != "csv" && format != "html" {
		return bad("format must be json, csv or html")
	}
	account := caller.Account
	switch c.Query("scope", "account") {
	case "account":
	case "all":
		if err := a.svc.AuthorizeAudit(caller, "keyledger:ReadAllAccounts", "*"); err != nil {
			return err
		}
		account = ""
	default:
		return bad("scope must be account or all")
	}
	ctx := c.UserContext()
	opts := compliance.Options{Now: a.clock.Now(), Region: a.region, Account: account}
	head := a.chain.Head()
	var b *compliance.Builder
	var integrity *compliance.Integrity
	if a.reports != nil {
		// Live aggregates: no walk over the history. The whole chain is
		// checked by the background verifier; its outcome is reported.
		state, agg := a.reports.Live()
		b = compliance.NewLiveBuilder(opts, state, agg)
		if in := a.reports.Integrity(); in != nil {
			copied := *in // the verifier's outcome is shared; this report adds to it
			integrity = &copied
		} else {
			integrity = &compliance.Integrity{Events: head.Count, Head: head.Hash.String(),
				Pending: "the background verification of the whole chain has not finished; the tail folded at start-up linked"}
		}
		integrity.Quarantined, integrity.QuarantineReasons = a.chain.Quarantined(), a.chain.QuarantineReasons()
	} else {
		b = compliance.NewBuilder(opts)
		if err := a.history.EventsFrom(ctx, 0, func(r event.Record) error {
			b.Add(r)
			return nil
		}); err != nil {
			return err
		}
		integrity = &compliance.Integrity{ChainVerified: true, Events: head.Count, Head: head.Hash.String(),
			Quarantined: a.chain.Quarantined(), QuarantineReasons: a.chain.QuarantineReasons()}
	}
	// Only the newest checkpoint is checked here: one is stored a second
	// under load, so checking them all would cost what the history costs.
	// keyledger audit verify and report compliance --full check every one.
	signed, stored, err := a.checkpoints.Newest(ctx)
	switch {
	case errors.Is(err, checkpoint.ErrNone):
	case err != nil:
		integrity.Problem = "checkpoints unreadable: " + err.Error()
	default:
		integrity.CheckpointsStored = stored
		if _, err := merkle.VerifyCheckpoints([][]byte{signed}, a.checkpoints.Verifier(), a.checkpoints.Tree().Root); err != nil {
			integrity.Problem = "newest " + err.Error()
		} else {
			integrity.CheckpointsVerified = 1
			if cp, err := merkle.Open(signed, a.checkpoints.Verifier()); err == nil {
				integrity.CheckpointSize = cp.Size
			}
		}
	}
	integrity.LedgerEvents = head.Count
	b.SetIntegrity(integrity)
	rep := b.Report()
	switch format {
	case "csv":
		c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
		return rep.CSV(c)
	case "html":
		c.Set(fiber.HeaderContentType, "text/html; charset=utf-8")
		return rep.HTML(c)
	}
	return c.JSON(rep)
}
