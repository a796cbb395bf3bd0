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
)

// keyledgerInbox is the reply-subject prefix of keyledger's own
// connections. Audit subscribers may subscribe to _INBOX.> (their replies);
// were keyledger's replies there too, they would read every answer it gets
// — KV material entries, snapshot chunks, publish acks.
const keyledgerInbox = "_KEYLEDGER_INBOX"

// identities are the embedded server's users.
type identities struct {
	keyledger nkeys.KeyPair
	auditPub  string
	auditFile string
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
	return &identities{keyledger: kl, auditPub: apub, auditFile: auditFile}, nil
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

// users returns the server's nkey users: keyledger with every permission,
// the audit subscriber with read-only access to the ledger streams.
func (id *identities) users(streams []string) ([]*server.NkeyUser, error) {
	kpub, err := id.keyledger.PublicKey()
	if err != nil {
		return nil, err
	}
	return []*server.NkeyUser{
		{Nkey: kpub},
		{Nkey: id.auditPub, Permissions: auditPermissions(streams)},
	}, nil
}

// auditPermissions let a subscriber read the ledger and checkpoint streams
// (stream info, ordered consumers, direct gets) and the live feed, and
// publish nothing that changes anything (nats.docs: JetStream API ACLs).
func auditPermissions(streams []string) *server.Permissions {
	pub := []string{"$JS.API.INFO", "$JS.API.STREAM.NAMES"} // names: finding the ledger's segments
	for _, s := range streams {
		pub = append(pub,
			"$JS.API.STREAM.INFO."+s,
			"$JS.API.STREAM.MSG.GET."+s,
			"$JS.API.DIRECT.GET."+s, "$JS.API.DIRECT.GET."+s+".>",
			"$JS.API.CONSUMER.CREATE."+s, "$JS.API.CONSUMER.CREATE."+s+".>",
			"$JS.API.CONSUMER.INFO."+s+".>",
			"$JS.API.CONSUMER.DELETE."+s+".>",
			"$JS.API.CONSUMER.MSG.NEXT."+s+".>",
			"$JS.ACK."+s+".>", "$JS.FC."+s+".>",
		)
	}
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: pub,
			// Deny wins: never the ledger's subjects or a KV bucket.
			Deny: []string{"keyledger.>", "$KV.>", "$JS.API.STREAM.CREATE.>", "$JS.API.STREAM.UPDATE.>",
				"$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.PURGE.>", "$JS.API.STREAM.MSG.DELETE.>"}},
		Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>", "keyledger.audit.>"}},
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
