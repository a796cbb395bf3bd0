package embedded

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Files holding the embedded server's NATS identities (nkey seeds, mode
// 0600) under Options.AuthDir.
const (
	// KeyledgerSeedFile is keyledger's own user: the only identity that may
	// publish to its streams, its KV buckets and the JetStream API.
	KeyledgerSeedFile = "nats-keyledger.nk"
	// AuditSeedFile is the subscribe-only identity for audit subscribers on
	// --nats-listen: `nats --nkey <file>` or `keyledger audit … --nats-creds <file>`.
	AuditSeedFile = "nats-audit.nk"
	// BackupSeedFile is the read-only identity of `keyledger backup
	// --nats-creds <file>` on --nats-listen: what audit reads, and the
	// material bucket (its sealed entries; their per-material keys are in
	// the data directory's slot file, never on NATS).
	BackupSeedFile = "nats-backup.nk"
)

// keyledgerInbox is the reply-subject prefix of keyledger's own
// connections. Audit subscribers live in other accounts (auditAccount), so
// they cannot see keyledger's replies anyway; the prefix keeps it so
// should an external deployment put both users in one account.
const keyledgerInbox = "_KEYLEDGER_INBOX"

// auditAccount is the NATS account of the default audit identity
// (AuditSeedFile); a named auditor's is auditAccount + "_" + its name
// (Options.Auditors). keyledger's own user stays in the global account,
// where JetStream keeps its streams.
//
// A separate account is what makes an audit identity read-only. A NATS
// client names any reply subject it likes, and the server publishes its
// answer there past the client's publish permissions: in keyledger's
// account, a stream info request with reply subject keyledger.events or
// $KV.keyledger-material.<id> would have the server write the answer into
// the ledger or over wrapped key material, as would a push consumer's
// deliver subject. The audit account reaches keyledger's account only
// through the imports linkReader sets up: reads answered to the requester
// by keyledger's read proxy (readproxy.go; replies of imported services
// are mapped back into the account that asked, so a reply subject can
// name nothing of keyledger's), and the live feed. No consumer API is
// imported: a push consumer would deliver in keyledger's account.
//
// Each auditor has an account of its own for the same reason, one level
// down: within one account a reply subject can name another client's
// inbox or the live feed, so auditors sharing an account could have the
// server answer into each other's reads (a fake line in `audit tail`, an
// error ending a batch). Across accounts nothing is delivered without an
// export, and auditor accounts export nothing. The one thing accounts
// share is a queue group's name on the imported feed, which nats-server
// keeps in keyledger's account: readerPermissions keeps each auditor's
// group names under its own account's.
const auditAccount = "KEYLEDGER_AUDIT"

// backupAccount is the NATS account of the backup identity: read-only for
// the same reason as audit's (a reply lands in the account that asked),
// and apart from it so that an auditor, who may be a third party, does not
// read the material bucket. It imports audit's reads of the ledger's
// streams and the material bucket's, and neither the live feed nor any
// write.
const backupAccount = "KEYLEDGER_BACKUP"

// MaterialStream is the stream of the material bucket (ledger/material's
// default bucket, keyledger-material), which the backup identity reads.
const MaterialStream = "KV_keyledger-material"

// MaterialCopyStream is the stream of the material bucket's second copy
// (ledger/material keeps every part twice), which the backup identity
// reads too, so a backup survives one damaged copy.
const MaterialCopyStream = MaterialStream + "-copy"

// ErrAuditorName is returned for an auditor name Options.Auditors cannot
// take.
var ErrAuditorName = errors.New("embedded: an auditor name is 1-32 of a-z, 0-9, '-', starting with a letter or digit")

// CheckAuditorName returns nil when name can name an auditor: its seed
// file is nats-audit-<name>.nk and its account KEYLEDGER_AUDIT_<name>.
func CheckAuditorName(name string) error {
	if len(name) == 0 || len(name) > 32 || name[0] == '-' {
		return ErrAuditorName
	}
	for _, c := range []byte(name) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return ErrAuditorName
		}
	}
	return nil
}

// AuditorSeedFileName is the seed file of the named auditor under
// Options.AuthDir (AuditSeedFile for the default auditor, name "").
func AuditorSeedFileName(name string) string {
	if name == "" {
		return AuditSeedFile
	}
	return "nats-audit-" + name + ".nk"
}

// reader is a read-only identity: an nkey user alone in its own account.
type reader struct {
	name    string // auditor name ("" the default auditor; backup: "")
	account string // its NATS account
	file    string // its seed file
	pub     string // its public nkey
	feed    bool   // it may subscribe to the live feed (auditors)
	backup  bool   // it reads the material bucket (the backup identity)
}

// identities are the embedded server's users.
type identities struct {
	keyledger nkeys.KeyPair
	readers   []*reader // the auditors, default first, then backup
}

func loadIdentities(dir string, auditors []string) (*identities, error) {
	kl, err := loadOrCreateSeed(filepath.Join(dir, KeyledgerSeedFile))
	if err != nil {
		return nil, err
	}
	id := &identities{keyledger: kl}
	add := func(r *reader) error {
		kp, err := loadOrCreateSeed(r.file)
		if err != nil {
			return err
		}
		if r.pub, err = kp.PublicKey(); err != nil {
			return err
		}
		for _, o := range id.readers {
			if o.pub == r.pub {
				return fmt.Errorf("embedded: %s and %s hold the same nkey", o.file, r.file)
			}
		}
		id.readers = append(id.readers, r)
		return nil
	}
	if err := add(&reader{account: auditAccount, file: filepath.Join(dir, AuditSeedFile), feed: true}); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, name := range auditors {
		if err := CheckAuditorName(name); err != nil {
			return nil, fmt.Errorf("%w: %q", err, name)
		}
		if seen[name] {
			return nil, fmt.Errorf("embedded: auditor %q named twice", name)
		}
		seen[name] = true
		r := &reader{name: name, account: auditAccount + "_" + name, file: filepath.Join(dir, AuditorSeedFileName(name)), feed: true}
		if err := add(r); err != nil {
			return nil, err
		}
	}
	if err := add(&reader{account: backupAccount, file: filepath.Join(dir, BackupSeedFile), backup: true}); err != nil {
		return nil, err
	}
	return id, nil
}

// auditor is the named auditor's identity, or nil.
func (id *identities) auditor(name string) *reader {
	for _, r := range id.readers {
		if r.feed && r.name == name {
			return r
		}
	}
	return nil
}

// loadOrCreateSeed reads a user nkey seed file, or creates one (0600).
func loadOrCreateSeed(path string) (nkeys.KeyPair, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		defer clear(data)
		kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(data))))
		if err != nil {
			return nil, fmt.Errorf("embedded: nkey seed %s is malformed", path)
		}
		return kp, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	seed, err := kp.Seed()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, append(seed, '\n'), 0o600); err != nil {
		return nil, err
	}
	return kp, nil
}

// Limits of each reader's account. A message the server delivers is
// copied once per matching subscription into that connection's outbound
// buffer (up to MaxPending, 64 MiB, before the server closes it as a slow
// consumer), so a reader's connections and subscriptions multiply what
// one answer costs the server; honest readers need few of either.
const (
	readerMaxConnections   = 16
	readerMaxSubscriptions = 256 // per connection
)

// accounts are the readers' accounts, one each, for server.Options, with
// the limits above (which nats-server sets only from configuration).
func (id *identities) accounts() ([]*server.Account, error) {
	var conf strings.Builder
	conf.WriteString("accounts {\n")
	for _, r := range id.readers {
		fmt.Fprintf(&conf, "  %s: { limits: { max_connections: %d, max_subscriptions: %d } }\n", r.account, readerMaxConnections, readerMaxSubscriptions)
	}
	conf.WriteString("}\n")
	var o server.Options
	if err := o.ProcessConfigString(conf.String()); err != nil {
		return nil, fmt.Errorf("embedded: reader accounts: %w", err)
	}
	byName := map[string]*server.Account{}
	for _, a := range o.Accounts {
		byName[a.Name] = a
	}
	out := make([]*server.Account, len(id.readers))
	for i, r := range id.readers {
		if out[i] = byName[r.account]; out[i] == nil {
			return nil, fmt.Errorf("embedded: reader account %s not configured", r.account)
		}
	}
	return out, nil
}

// users returns the server's nkey users: keyledger in the global account
// with every permission, and each reader alone in its account (accounts,
// as accounts() made them), reading through what its account imports.
func (id *identities) users(accounts []*server.Account) ([]*server.NkeyUser, error) {
	kpub, err := id.keyledger.PublicKey()
	if err != nil {
		return nil, err
	}
	users := []*server.NkeyUser{{Nkey: kpub}}
	for i, r := range id.readers {
		users = append(users, &server.NkeyUser{Nkey: r.pub, Account: accounts[i], Permissions: readerPermissions(r)})
	}
	return users, nil
}

// accountAPI is the JetStream API a reader may call about the account:
// stream names (finding the ledger's segments) and account info.
var accountAPI = []string{"$JS.API.INFO", "$JS.API.STREAM.NAMES"}

// streamAPI is the JetStream API a reader may call on one stream: its
// info, and messages by direct get (single, last for a subject, or
// batched) or from the stream leader, each answered to the requester only.
func streamAPI(stream string) []string {
	return []string{
		"$JS.API.STREAM.INFO." + stream,
		"$JS.API.STREAM.MSG.GET." + stream,
		"$JS.API.DIRECT.GET." + stream, "$JS.API.DIRECT.GET." + stream + ".>",
	}
}

// feedSubjects is the live audit feed (package feed).
const feedSubjects = "keyledger.audit.>"

// linkReader sets up what a reader's account imports from keyledger's:
// accountAPI and streamAPI of each stream (the ledger's; and the material
// bucket's for backup), each served by keyledger's read proxy (readproxy.go)
// rather than by JetStream directly, and for an auditor the live feed.
// Segment streams are linked as they appear (segments.go).
func linkReader(keyledger, acc *server.Account, r *reader, streams []string) error {
	if err := exportReads(keyledger, acc); err != nil {
		return err
	}
	for _, subj := range accountAPI {
		if err := linkService(keyledger, acc, subj); err != nil {
			return err
		}
	}
	if r.backup {
		streams = append(streams[:len(streams):len(streams)], MaterialStream, MaterialCopyStream)
	}
	for _, s := range streams {
		if err := linkStream(keyledger, acc, s); err != nil {
			return err
		}
	}
	if !r.feed {
		return nil
	}
	if err := keyledger.AddStreamExport(feedSubjects, []*server.Account{acc}); err != nil {
		return fmt.Errorf("embedded: export %s: %w", feedSubjects, err)
	}
	if err := acc.AddStreamImport(keyledger, feedSubjects, ""); err != nil {
		return fmt.Errorf("embedded: import %s: %w", feedSubjects, err)
	}
	return nil
}

// linkStream makes one stream's read API (streamAPI) reachable from a
// reader's account.
func linkStream(keyledger, reader *server.Account, stream string) error {
	for _, subj := range streamAPI(stream) {
		if err := linkService(keyledger, reader, subj); err != nil {
			return err
		}
	}
	return nil
}

// exportReads exports the read proxy's subjects for one reader's account
// (proxySubject) to that account only: requests answered once, and
// direct gets, answered with a stream of messages the proxy ends with an
// empty message (which drops the server's reply mapping at once; the
// response threshold drops one the proxy never answered).
func exportReads(keyledger, reader *server.Account) error {
	api, direct := proxySubject(reader.Name, proxyAPI, ">"), proxySubject(reader.Name, proxyDirect, ">")
	if err := keyledger.AddServiceExportWithResponse(api, server.Singleton, []*server.Account{reader}); err != nil {
		return fmt.Errorf("embedded: export %s: %w", api, err)
	}
	if err := keyledger.AddServiceExportWithResponse(direct, server.Streamed, []*server.Account{reader}); err != nil {
		return fmt.Errorf("embedded: export %s: %w", direct, err)
	}
	for _, e := range []string{api, direct} {
		if err := keyledger.SetServiceExportResponseThreshold(e, proxyResponseThreshold); err != nil {
			return fmt.Errorf("embedded: export %s: %w", e, err)
		}
	}
	return nil
}

// linkService imports subj (a JetStream API subject) into a reader's
// account, served by the read proxy's subject for that account and subj.
func linkService(keyledger, reader *server.Account, subj string) error {
	kind := proxyAPI
	if strings.HasPrefix(subj, "$JS.API.DIRECT.GET.") {
		kind = proxyDirect
	}
	if err := reader.AddServiceImport(keyledger, subj, proxySubject(reader.Name, kind, subj)); err != nil {
		return fmt.Errorf("embedded: import %s: %w", subj, err)
	}
	return nil
}

// readerPermissions let a reader call the read API and subscribe to its
// replies, and an auditor (feed) the live feed; nothing else. The stream
// API is allowed for any stream name (a permission cannot name "every
// segment" either); what it reaches is what the account imports
// (segments.go says why that is safe).
//
// An auditor's queue groups on the feed must be named under its account
// (FeedQueuePrefix). nats-server serves an imported stream to a queue
// group through a shadow subscription in the exporting account, under
// the group's own name, so two accounts' groups of one name would be one
// group there: each auditor would get only part of the events, and one
// could take events from another by naming its group. Account names are
// distinct tokens, so the prefixes never overlap.
func readerPermissions(r *reader) *server.Permissions {
	allow := append([]string(nil), accountAPI...)
	allow = append(allow, streamAPI("*")...)
	sub := []string{"_INBOX.>"}
	if r.feed {
		sub = append(sub, feedSubjects, feedSubjects+" "+r.account+".>")
	}
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: allow},
		Subscribe: &server.SubjectPermission{Allow: sub},
	}
}

// FeedQueuePrefix is what the named auditor's queue groups on the live
// feed must start with ("" the default auditor): its account's name and a
// dot, e.g. KEYLEDGER_AUDIT_acme.siem. A queue subscription named
// otherwise is refused (a permissions violation).
func FeedQueuePrefix(auditor string) string {
	if auditor == "" {
		return auditAccount + "."
	}
	return auditAccount + "_" + auditor + "."
}

// connectOption authenticates as keyledger's own user.
func (id *identities) connectOption() (nats.Option, error) {
	pub, err := id.keyledger.PublicKey()
	if err != nil {
		return nil, err
	}
	return nats.Nkey(pub, id.keyledger.Sign), nil
}
