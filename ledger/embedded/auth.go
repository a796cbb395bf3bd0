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
// connections. Audit subscribers live in another account (auditAccount), so
// they cannot see keyledger's replies anyway; the prefix keeps it so
// should an external deployment put both users in one account.
const keyledgerInbox = "_KEYLEDGER_INBOX"

// auditAccount is the NATS account of the audit identity. keyledger's own
// user stays in the global account, where JetStream keeps its streams.
//
// A separate account is what makes the audit identity read-only. A NATS
// client names any reply subject it likes, and the server publishes its
// answer there past the client's publish permissions: in keyledger's
// account, a stream info request with reply subject keyledger.events or
// $KV.keyledger-material.<id> would have the server write the answer into
// the ledger or over wrapped key material, as would a push consumer's
// deliver subject. The audit account reaches keyledger's account only
// through the imports linkAuditAccount sets up: reads answered to the
// requester (replies of imported services are mapped back into the audit
// account, so a reply subject can name nothing of keyledger's), and the
// live feed. No consumer API is imported: a push consumer would deliver in
// keyledger's account.
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

// identities are the embedded server's users.
type identities struct {
	keyledger  nkeys.KeyPair
	auditPub   string
	auditFile  string
	backupPub  string
	backupFile string
}

func loadIdentities(dir string) (*identities, error) {
	kl, err := loadOrCreateSeed(filepath.Join(dir, KeyledgerSeedFile))
	if err != nil {
		return nil, err
	}
	auditFile := filepath.Join(dir, AuditSeedFile)
	au, err := loadOrCreateSeed(auditFile)
	if err != nil {
		return nil, err
	}
	apub, err := au.PublicKey()
	if err != nil {
		return nil, err
	}
	backupFile := filepath.Join(dir, BackupSeedFile)
	bk, err := loadOrCreateSeed(backupFile)
	if err != nil {
		return nil, err
	}
	bpub, err := bk.PublicKey()
	if err != nil {
		return nil, err
	}
	return &identities{keyledger: kl, auditPub: apub, auditFile: auditFile, backupPub: bpub, backupFile: backupFile}, nil
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

// users returns the server's nkey users: keyledger in the global account
// with every permission, the audit subscriber in audit and the backup
// reader in backup, each reading through what its account imports.
func (id *identities) users(audit, backup *server.Account) ([]*server.NkeyUser, error) {
	kpub, err := id.keyledger.PublicKey()
	if err != nil {
		return nil, err
	}
	return []*server.NkeyUser{
		{Nkey: kpub},
		{Nkey: id.auditPub, Account: audit, Permissions: auditPermissions()},
		{Nkey: id.backupPub, Account: backup, Permissions: backupPermissions()},
	}, nil
}

// accountAPI is the JetStream API the audit identity may call about the
// account: stream names (finding the ledger's segments) and account info.
var accountAPI = []string{"$JS.API.INFO", "$JS.API.STREAM.NAMES"}

// streamAPI is the JetStream API the audit identity may call on one
// stream: its info, and messages by direct get (single, last for a
// subject, or batched) or from the stream leader, each answered to the
// requester only.
func streamAPI(stream string) []string {
	return []string{
		"$JS.API.STREAM.INFO." + stream,
		"$JS.API.STREAM.MSG.GET." + stream,
		"$JS.API.DIRECT.GET." + stream, "$JS.API.DIRECT.GET." + stream + ".>",
	}
}

// feedSubjects is the live audit feed (package feed).
const feedSubjects = "keyledger.audit.>"

// linkAuditAccount exports accountAPI, streamAPI of each stream and the
// live feed from keyledger's account to audit only, and imports them there
// under the same subjects. Segment streams are linked as they appear
// (segments.go).
func linkAuditAccount(keyledger, audit *server.Account, streams []string) error {
	for _, subj := range accountAPI {
		if err := linkService(keyledger, audit, subj); err != nil {
			return err
		}
	}
	for _, s := range streams {
		if err := linkStream(keyledger, audit, s); err != nil {
			return err
		}
	}
	if err := keyledger.AddStreamExport(feedSubjects, []*server.Account{audit}); err != nil {
		return fmt.Errorf("embedded: export %s: %w", feedSubjects, err)
	}
	if err := audit.AddStreamImport(keyledger, feedSubjects, ""); err != nil {
		return fmt.Errorf("embedded: import %s: %w", feedSubjects, err)
	}
	return nil
}

// linkBackupAccount exports accountAPI and streamAPI of each stream (the
// ledger's, and the material bucket's) from keyledger's account to backup
// only, and imports them there. Segment streams are linked as they
// appear (segments.go).
func linkBackupAccount(keyledger, backup *server.Account, streams []string) error {
	for _, subj := range accountAPI {
		if err := linkService(keyledger, backup, subj); err != nil {
			return err
		}
	}
	for _, s := range append(streams, MaterialStream, MaterialCopyStream) {
		if err := linkStream(keyledger, backup, s); err != nil {
			return err
		}
	}
	return nil
}

// linkStream makes one stream's read API (streamAPI) reachable from a
// reader's account (audit or backup).
func linkStream(keyledger, reader *server.Account, stream string) error {
	for _, subj := range streamAPI(stream) {
		if err := linkService(keyledger, reader, subj); err != nil {
			return err
		}
	}
	return nil
}

// linkService exports subj from keyledger's account to a reader's account
// and imports it there. An export names every account it is for, so an
// export made for one reader is extended, not replaced, for the next.
// Batched direct gets answer with many messages, so those services stream
// their responses.
func linkService(keyledger, reader *server.Account, subj string) error {
	resp := server.Singleton
	if strings.HasPrefix(subj, "$JS.API.DIRECT.GET.") {
		resp = server.Streamed
	}
	if err := keyledger.AddServiceExportWithResponse(subj, resp, []*server.Account{reader}); err != nil {
		return fmt.Errorf("embedded: export %s: %w", subj, err)
	}
	if err := reader.AddServiceImport(keyledger, subj, subj); err != nil {
		return fmt.Errorf("embedded: import %s: %w", subj, err)
	}
	return nil
}

// auditPermissions let the audit identity call the read API and subscribe
// to its replies and the live feed; nothing else. The stream API is
// allowed for any stream name (a permission cannot name "every segment"
// either); what it reaches is what the account imports (segments.go says
// why that is safe). The permissions keep one auditor from publishing to
// another's inbox or to anything but the API.
func auditPermissions() *server.Permissions {
	allow := append([]string(nil), accountAPI...)
	allow = append(allow, streamAPI("*")...)
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: allow},
		Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>", feedSubjects}},
	}
}

// backupPermissions let the backup identity call the read API and
// subscribe to its replies; nothing else (no live feed). As for audit,
// what the stream API reaches is what its account imports.
func backupPermissions() *server.Permissions {
	allow := append([]string(nil), accountAPI...)
	allow = append(allow, streamAPI("*")...)
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: allow},
		Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
	}
}

// connectOption authenticates as keyledger's own user.
func (id *identities) connectOption() (nats.Option, error) {
	pub, err := id.keyledger.PublicKey()
	if err != nil {
		return nil, err
	}
	return nats.Nkey(pub, id.keyledger.Sign), nil
}
