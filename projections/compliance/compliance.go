// Package compliance builds keyledger's compliance report from the ledger:
// each check names its source (AWS Security Hub control, PCI DSS
// requirement, NIST publication), with findings per key or principal, and
// the figures behind the charts (usage over time per key, keys by state,
// rotation age). It is pure: it folds the records it is given.
//
// A report covers one account (Options.Account) or, for an operator, every
// account: keys, their findings and usage, the principals and their
// identity-policy findings, and the requests and denials counted are those
// of the accounts covered. The audit-integrity and retention checks are of
// the one ledger all accounts share.
package compliance

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/projections/keystate"
	"github.com/keyledger/keyledger/projections/policy"
)

// Options tune the checks.
type Options struct {
	Now time.Time
	// Region names keys in ARNs; "" names each in the region the ledger
	// recorded it in.
	Region string
	// Account limits the report to one account's keys, principals and
	// requests; "" covers every account.
	Account         string
	MaxAgeDays      int    // cryptoperiod by age of the current key material (default 365)
	MaxEncryptions  uint64 // cryptoperiod by use of one key material (default 2^32)
	UnusedDays      int    // a key unused this long is flagged (default 90)
	SpikeMinimum    int    // denials in a day below this are never a spike (default 10)
	RetentionMonths int    // required audit retention (default 12)
	// Integrity is the outcome of checking the chain and the signed
	// checkpoints, done by the caller; nil means it was not checked.
	Integrity *Integrity
	// Retention is the ledger stream's maximum age; 0 keeps everything.
	Retention time.Duration
}

// Integrity is what the caller found verifying the ledger.
type Integrity struct {
	ChainVerified       bool   `json:"chainVerified"`
	Events              uint64 `json:"events"`
	Head                string `json:"head"`
	CheckpointsVerified int    `json:"checkpointsVerified"`
	// CheckpointsStored, when more than CheckpointsVerified, says only the
	// newest of them was checked (a live report; audit verify checks all).
	CheckpointsStored uint64 `json:"checkpointsStored,omitempty"`
	Problem           string `json:"problem,omitempty"`
	// Pending says why the whole chain is not verified yet (the background
	// verifier is still walking it): the check warns.
	Pending string `json:"pending,omitempty"`
	// Quarantined counts ledger messages folding refused (forged, out of
	// place, unsigned); QuarantineReasons names the first few.
	Quarantined       uint64   `json:"quarantined,omitempty"`
	QuarantineReasons []string `json:"quarantineReasons,omitempty"`
	// VerifiedAt is when the whole chain's walk (Events events, to Head)
	// finished: a live instance's background verifier walks it once at
	// start; events written since are linked as they are appended.
	VerifiedAt time.Time `json:"verifiedAt,omitzero"`
	// LedgerEvents is the ledger's size when the report was made (0: the
	// same as Events).
	LedgerEvents uint64 `json:"ledgerEvents,omitempty"`
	// CheckpointSize is how many events the newest verified checkpoint
	// covers.
	CheckpointSize int64 `json:"checkpointSize,omitempty"`
}

// Finding is one thing a check found.
type Finding struct {
	Resource string `json:"resource"`
	Detail   string `json:"detail"`
}

// Check is one compliance check.
type Check struct {
	ID       string    `json:"id"`
	Title    string    `json:"title"`
	Source   string    `json:"source"`
	Status   string    `json:"status"` // PASS, FAIL, WARN, INFO
	Summary  string    `json:"summary"`
	Findings []Finding `json:"findings,omitempty"`
}

// Series is one key's daily count of successful cryptographic operations.
type Series struct {
	Key    string         `json:"key"`
	Counts map[string]int `json:"counts"` // YYYY-MM-DD → operations
}

// Report is the whole report.
type Report struct {
	GeneratedAt  time.Time      `json:"generatedAt"`
	Region       string         `json:"region"`
	Scope        string         `json:"scope"` // "account <id>" or "all accounts"
	Events       uint64         `json:"events"`
	FirstEvent   time.Time      `json:"firstEvent"`
	LastEvent    time.Time      `json:"lastEvent"`
	Keys         int            `json:"keys"`
	Checks       []Check        `json:"checks"`
	KeysByState  map[string]int `json:"keysByState"`
	RotationAge  map[string]int `json:"rotationAgeDays"` // key → days since its current material
	Usage        []Series       `json:"usage"`           // the busiest keys
	DeniedPerDay map[string]int `json:"deniedPerDay"`
	Principals   []string       `json:"principals"`
	// Aliases names the reported keys that have aliases (key id → alias
	// names), so readers see names beside ids.
	Aliases map[string][]string `json:"aliases,omitempty"`
}

// Builder makes a report from the key state and the compliance aggregates:
// either its own, folded record by record (NewBuilder, Add), or a live
// instance's (NewLiveBuilder), which answers without reading the ledger.
type Builder struct {
	opts  Options
	state *keystate.State
	agg   *Aggregates
	view  view // the covered accounts' figures, read by Report
}

// NewBuilder starts a report folded from records given to Add.
func NewBuilder(o Options) *Builder {
	return NewLiveBuilder(o, keystate.New(), NewAggregates())
}

// NewLiveBuilder reports on a state and aggregates someone else keeps
// current (an instance's live projections); Add must not be called.
func NewLiveBuilder(o Options, state *keystate.State, agg *Aggregates) *Builder {
	if o.MaxAgeDays == 0 {
		o.MaxAgeDays = 365
	}
	if o.MaxEncryptions == 0 {
		o.MaxEncryptions = 1 << 32
	}
	if o.UnusedDays == 0 {
		o.UnusedDays = 90
	}
	if o.SpikeMinimum == 0 {
		o.SpikeMinimum = 10
	}
	if o.RetentionMonths == 0 {
		o.RetentionMonths = 12
	}
	return &Builder{opts: o, state: state, agg: agg}
}

var cryptoOps = map[string]bool{"Encrypt": true, "Decrypt": true, "ReEncrypt": true, "GenerateDataKey": true,
	"GenerateDataKeyWithoutPlaintext": true, "GenerateDataKeyPair": true, "GenerateDataKeyPairWithoutPlaintext": true,
	"Sign": true, "Verify": true, "GenerateMac": true, "VerifyMac": true, "DeriveSharedSecret": true}

// SetIntegrity records what the caller found verifying the ledger.
func (b *Builder) SetIntegrity(in *Integrity) { b.opts.Integrity = in }

// covers reports whether the report covers account.
func (b *Builder) covers(account string) bool {
	return b.opts.Account == "" || account == b.opts.Account
}

// Add folds one record. Every record goes into the key state (a key's
// history spans accounts: another account may use it); only the covered
// accounts' requests are counted when the report is made.
func (b *Builder) Add(r event.Record) {
	recs := []event.Record{r}
	b.state.Apply(recs)
	b.agg.Apply(recs)
}

func (b *Builder) arn(k keystate.Key) string {
	region := b.opts.Region
	if region == "" {
		region = k.Region
	}
	return "arn:aws:kms:" + region + ":" + k.Account + ":key/" + k.ID
}

// Report evaluates every check.
func (b *Builder) Report() *Report {
	o := b.opts
	b.view = b.agg.view(b.covers, 5)
	snap := b.state.Snapshot()
	snap.Keys = slices.DeleteFunc(snap.Keys, func(k keystate.Key) bool { return !b.covers(k.Account) })
	rep := &Report{GeneratedAt: o.Now, Region: o.Region, Scope: "all accounts", Events: b.view.events, FirstEvent: b.view.first,
		LastEvent: b.view.last, Keys: len(snap.Keys), KeysByState: map[string]int{}, RotationAge: map[string]int{}, DeniedPerDay: b.view.denied}
	if o.Account != "" {
		rep.Scope = "account " + o.Account
	}
	for _, a := range snap.Aliases {
		if b.covers(a.Account) && a.KeyID != "" {
			if rep.Aliases == nil {
				rep.Aliases = map[string][]string{}
			}
			rep.Aliases[a.KeyID] = append(rep.Aliases[a.KeyID], a.Name)
		}
	}
	regions := map[string]bool{}
	for _, k := range snap.Keys {
		if k.Region != "" {
			regions[k.Region] = true
		}
	}
	if rep.Region == "" {
		rep.Region = strings.Join(slices.Sorted(maps.Keys(regions)), ", ")
	}
	for _, k := range snap.Keys {
		rep.KeysByState[string(k.State)]++
		if k.HasMaterial() {
			rep.RotationAge[k.ID] = b.days(k.CurrentMaterial().Created)
		}
	}
	principals := b.configuredPrincipals()
	for _, p := range principals {
		rep.Principals = append(rep.Principals, p.ARN)
	}
	rep.Checks = []Check{
		b.checkRotation(snap),
		b.checkCryptoperiodAge(snap),
		b.checkCryptoperiodUsage(snap),
		b.checkPendingDeletion(snap),
		b.checkPublicKeyPolicy(snap),
		b.checkDecryptOnAllKeys(principals),
		b.checkUnusedKeys(snap),
		b.checkDeniedSpikes(),
		b.checkIntegrity(),
		b.checkRetention(),
	}
	for i := range rep.Checks {
		settle(&rep.Checks[i])
	}
	rep.Usage = b.view.usage
	return rep
}

// settle fills in a check's status and summary from its findings, unless
// the check set them itself.
func settle(c *Check) {
	if c.Status == "" {
		c.Status = "PASS"
		if len(c.Findings) > 0 {
			c.Status = "FAIL"
			if c.ID == "pending-deletion" {
				c.Status = "WARN"
			}
		}
	}
	if c.Summary == "" {
		c.Summary = fmt.Sprintf("%d findings", len(c.Findings))
	}
}

// days is how many whole days before the report's time t was.
func (b *Builder) days(t time.Time) int { return int(b.opts.Now.Sub(t).Hours() / 24) }

func (b *Builder) checkRotation(snap keystate.Snapshot) Check {
	c := Check{ID: "rotation", Title: "Automatic rotation is enabled for symmetric encryption keys",
		Source: "AWS Security Hub KMS.4; PCI DSS v4.0 3.6.4"}
	for _, k := range snap.Keys {
		if k.Spec == "SYMMETRIC_DEFAULT" && k.Origin == "AWS_KMS" && k.State != keystate.PendingDeletion && k.RotationPeriodDays == 0 {
			c.Findings = append(c.Findings, Finding{b.arn(k), "automatic rotation is disabled"})
		}
	}
	return c
}

func (b *Builder) checkCryptoperiodAge(snap keystate.Snapshot) Check {
	c := Check{ID: "cryptoperiod-age", Title: fmt.Sprintf("Key material is younger than its cryptoperiod (%d days)", b.opts.MaxAgeDays),
		Source: "NIST SP 800-57 Part 1 Rev. 5 §5.3; PCI DSS v4.0 3.6.4"}
	for _, k := range snap.Keys {
		if !k.HasMaterial() {
			continue
		}
		m := k.CurrentMaterial()
		if d := b.days(m.Created); d > b.opts.MaxAgeDays {
			c.Findings = append(c.Findings, Finding{b.arn(k), fmt.Sprintf("current key material %s is %d days old", short(m.ID), d)})
		}
	}
	return c
}

func (b *Builder) checkCryptoperiodUsage(snap keystate.Snapshot) Check {
	c := Check{ID: "cryptoperiod-usage", Title: fmt.Sprintf("No key material has done more than %d encryptions", b.opts.MaxEncryptions),
		Source: "NIST SP 800-38D §8.3 (usage limits); PCI DSS v4.0 3.6.4"}
	for _, k := range snap.Keys {
		if !k.HasMaterial() {
			continue
		}
		for _, m := range k.Materials {
			if n := snap.Encryptions[m.ID]; n > b.opts.MaxEncryptions {
				c.Findings = append(c.Findings, Finding{b.arn(k), fmt.Sprintf("key material %s has done %d encryptions", short(m.ID), n)})
			}
		}
	}
	return c
}

func (b *Builder) checkPendingDeletion(snap keystate.Snapshot) Check {
	c := Check{ID: "pending-deletion", Title: "No key is scheduled for deletion unintentionally",
		Source: "AWS Security Hub KMS.3"}
	for _, k := range snap.Keys {
		if k.State == keystate.PendingDeletion {
			c.Findings = append(c.Findings, Finding{b.arn(k), "deletion scheduled for " + k.DeletionDate.UTC().Format(time.RFC3339)})
		}
	}
	return c
}

func (b *Builder) checkPublicKeyPolicy(snap keystate.Snapshot) Check {
	c := Check{ID: "public-key-policy", Title: "No key policy allows use of the key to everyone (Principal \"*\" without conditions)",
		Source: "AWS Security Hub KMS.5"}
	for _, k := range snap.Keys {
		doc, err := policy.Parse(k.Policy)
		if err != nil {
			continue
		}
		for i, st := range doc.Statements {
			if st.Effect == policy.Allow && st.Principal != nil && st.Principal.Any && len(st.Conditions) == 0 {
				c.Findings = append(c.Findings, Finding{b.arn(k), fmt.Sprintf("key policy %s allows any principal", doc.Label(&doc.Statements[i]))})
			}
		}
	}
	return c
}

func (b *Builder) checkUnusedKeys(snap keystate.Snapshot) Check {
	c := Check{ID: "unused-keys", Title: fmt.Sprintf("No enabled key has gone unused for %d days", b.opts.UnusedDays),
		Source: "NIST SP 800-57 Part 1 Rev. 5 §8.3.4 (keys no longer needed); PCI DSS v4.0 3.7.5"}
	for _, k := range snap.Keys {
		if k.State != keystate.Enabled {
			continue
		}
		last, used := snap.LastUse[k.ID]
		switch {
		case used && b.days(last.Time) > b.opts.UnusedDays:
			c.Findings = append(c.Findings, Finding{b.arn(k), fmt.Sprintf("last used %d days ago (%s)", b.days(last.Time), last.Operation)})
		case !used && b.days(k.Created) > b.opts.UnusedDays:
			c.Findings = append(c.Findings, Finding{b.arn(k), fmt.Sprintf("never used in the %d days since it was created", b.days(k.Created))})
		}
	}
	return c
}

// configuredPrincipal is one principal as the newest PrincipalsConfigured
// event summarises it.
type configuredPrincipal struct {
	ARN      string            `json:"arn"`
	Policies []json.RawMessage `json:"policies"`
}

// configuredPrincipals reads the newest principals summary folded; a
// summary that does not parse yields none.
func (b *Builder) configuredPrincipals() []configuredPrincipal {
	var principals []configuredPrincipal
	_ = json.Unmarshal([]byte(b.view.principals), &principals)
	return slices.DeleteFunc(principals, func(p configuredPrincipal) bool { return !b.covers(accountOf(p.ARN)) })
}

// accountOf is the account of an IAM principal ARN (arn:aws:iam::<account>:…).
func accountOf(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 {
		return ""
	}
	return parts[4]
}

func (b *Builder) checkDecryptOnAllKeys(principals []configuredPrincipal) Check {
	c := Check{ID: "decrypt-on-all-keys", Title: "No identity policy allows decryption on all KMS keys",
		Source: "AWS Security Hub KMS.1 and KMS.2"}
	for _, p := range principals {
		for _, raw := range p.Policies {
			doc, err := policy.Parse(string(raw))
			if err != nil {
				continue
			}
			for i, st := range doc.Statements {
				if st.Effect != policy.Allow || len(st.Conditions) > 0 || !slices.Contains(st.Resource, "*") {
					continue
				}
				for _, a := range []string{"kms:Decrypt", "kms:ReEncryptFrom"} {
					if (&st).MatchesAction(a) {
						c.Findings = append(c.Findings, Finding{p.ARN, fmt.Sprintf("identity policy %s allows %s on all keys", doc.Label(&doc.Statements[i]), a)})
						break
					}
				}
			}
		}
	}
	return c
}

func (b *Builder) checkDeniedSpikes() Check {
	c := Check{ID: "denied-spikes", Title: "No spike of denied requests",
		Source: "PCI DSS v4.0 10.4.1 (review of security events); NIST SP 800-92"}
	var counts []int
	for _, n := range b.view.denied {
		counts = append(counts, n)
	}
	sort.Ints(counts)
	median := 0
	if len(counts) > 0 {
		median = counts[len(counts)/2]
	}
	threshold := max(b.opts.SpikeMinimum, 3*median)
	for _, day := range slices.Sorted(maps.Keys(b.view.denied)) {
		if n := b.view.denied[day]; n > threshold {
			c.Findings = append(c.Findings, Finding{day, fmt.Sprintf("%d denied requests (threshold %d)", n, threshold)})
		}
	}
	return c
}

func (b *Builder) checkIntegrity() Check {
	c := Check{ID: "audit-integrity", Title: "The audit ledger's hash chain and signed checkpoints verify",
		Source: "PCI DSS v4.0 10.3.4 (audit log integrity); NIST SP 800-92"}
	switch in := b.opts.Integrity; {
	case in == nil:
		c.Status, c.Summary = "WARN", "not checked"
	case in.Problem != "" || in.Quarantined > 0:
		if in.Problem != "" {
			c.Findings = append(c.Findings, Finding{"ledger", in.Problem})
		}
		if in.Quarantined > 0 {
			c.Status = "FAIL"
			c.Summary = fmt.Sprintf("%d ledger messages quarantined: not applied, the chain continues from the last valid event", in.Quarantined)
			for _, r := range in.QuarantineReasons {
				c.Findings = append(c.Findings, Finding{"ledger", "quarantined: " + r})
			}
			if n := uint64(len(in.QuarantineReasons)); n < in.Quarantined {
				c.Findings = append(c.Findings, Finding{"ledger", fmt.Sprintf("and %d more quarantined (keyledger audit verify lists them)", in.Quarantined-n)})
			}
		}
	case in.Pending != "":
		c.Status, c.Summary = "WARN", in.Pending
	default:
		c.Summary = integrityLine(in)
	}
	return c
}

// integrityLine says what was verified: the chain walked (how many events,
// to which head, when), the events linked since, and the checkpoints.
func integrityLine(in *Integrity) string {
	var b strings.Builder
	fmt.Fprintf(&b, "hash chain walked and verified over %s events to head %s", count(in.Events), short(in.Head))
	if !in.VerifiedAt.IsZero() {
		fmt.Fprintf(&b, " at %s (the background verifier's last whole-ledger pass)", in.VerifiedAt.UTC().Format("2006-01-02 15:04 MST"))
	}
	if in.LedgerEvents > in.Events {
		fmt.Fprintf(&b, "; the %s events written since were each linked as they were appended (ledger now %s events)",
			count(in.LedgerEvents-in.Events), count(in.LedgerEvents))
	}
	switch {
	case in.CheckpointsVerified == 0:
		b.WriteString("; no signed checkpoint stored yet")
	case in.CheckpointsStored > uint64(in.CheckpointsVerified):
		fmt.Fprintf(&b, "; the newest of %s signed checkpoints verifies and matches the Merkle tree (", count(in.CheckpointsStored))
		if in.CheckpointSize > 0 {
			fmt.Fprintf(&b, "it covers %s events; ", count(uint64(in.CheckpointSize)))
		}
		b.WriteString("keyledger audit verify checks every one)")
	case in.CheckpointsVerified == 1:
		b.WriteString("; the signed checkpoint verifies and matches the Merkle tree")
		if in.CheckpointSize > 0 {
			fmt.Fprintf(&b, " (it covers %s events)", count(uint64(in.CheckpointSize)))
		}
	default:
		fmt.Fprintf(&b, "; %d signed checkpoints verify and match the Merkle tree", in.CheckpointsVerified)
		if in.CheckpointSize > 0 {
			fmt.Fprintf(&b, " (the newest covers %s events)", count(uint64(in.CheckpointSize)))
		}
	}
	return b.String()
}

// count writes n with thousands separators.
func count(n uint64) string {
	s := strconv.FormatUint(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func (b *Builder) checkRetention() Check {
	o := b.opts
	c := Check{ID: "retention", Title: fmt.Sprintf("Audit records are kept at least %d months", o.RetentionMonths),
		Source: "PCI DSS v4.0 10.5.1"}
	need := time.Duration(o.RetentionMonths) * 30 * 24 * time.Hour
	switch {
	case o.Retention != 0 && o.Retention < need:
		c.Findings = append(c.Findings, Finding{"ledger stream", fmt.Sprintf("the stream keeps events only %s", o.Retention)})
	default:
		c.Summary = "the ledger stream never expires events (deletes and purges are denied)"
		if !b.view.first.IsZero() {
			c.Summary += "; first event " + b.view.first.UTC().Format("2006-01-02")
		}
	}
	return c
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12] + "…"
	}
	return id
}
