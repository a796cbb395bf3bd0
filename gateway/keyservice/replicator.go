package keyservice

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/keyledger/keyledger/crypto/regionkey"
	"github.com/keyledger/keyledger/crypto/secret"
	"github.com/keyledger/keyledger/ledger/event"
	"github.com/keyledger/keyledger/ledger/replication"
	"github.com/keyledger/keyledger/ledger/writer"
	"github.com/keyledger/keyledger/projections/keystate"
)

// The replicator carries what related multi-Region keys share between this
// region and the others, on the replication link (ledger/replication: an
// outbox stream here, sourced by each peer's inbox).
//
// Three kinds of message, each a whole state, signed by the sending
// region's writer key (and refused unless the signer is one this region
// trusts for the sender's region):
//
//   - hello: this region's public replication key. A peer records it
//     (PeerRegionRegistered) and seals key material sent here to it.
//   - sync: a key's shared properties at a version, from its primary (or
//     from the key handing the primary role over) to a related key's region,
//     with every material sealed to that region's replication key (never in
//     the clear, never under a root key) and, until the replica exists,
//     what to create it with. The receiver records ReplicaKeyCreated or
//     MultiRegionKeySynchronized with the sender's event id.
//   - ack: a replica's region confirming the version it holds (or that the
//     replica was deleted), with its event id; the primary records
//     ReplicaAcknowledged.
//
// Delivery is at least once and order does not matter: a receiver applies
// only versions newer than it holds (a duplicate is answered with a fresh
// ack), and the sender derives what to send from its state alone — every
// replica that has not confirmed the key's version is sent it again after
// ResendAfter, doubling each time — so a crash between an event and its message, a lost
// message or a region that was down for a week all end the same way. The
// primary's new material becomes current only when every replica
// confirmed it (keystate), so no related key encrypts under material
// another lacks; while a region is cut off, rotation there waits, and the
// other regions keep serving with what they hold.

// Message kinds.
const (
	kindHello = "hello"
	kindSync  = "sync"
	kindAck   = "ack"
)

// ReplicationLink is the transport (*replication.Link).
type ReplicationLink interface {
	Publish(ctx context.Context, to, kind, key string, data []byte) error
	Erase(ctx context.Context, to, kind, key string) error
	Receive(ctx context.Context, fn func(context.Context, replication.Message) error) error
}

// ReplicatorConfig wires a Replicator.
type ReplicatorConfig struct {
	Link ReplicationLink
	// Key is this region's replication key; Writer signs what it sends.
	Key    *regionkey.Key
	Writer *writer.Key
	// Peers are the regions related keys may live in, each with the
	// writer keys whose signatures this region accepts from it.
	Peers map[string][]ed25519.PublicKey
	// Interval is how often the state is checked for what to send
	// (default 1s); ResendAfter how soon an unconfirmed message is sent
	// again (default 30s).
	Interval, ResendAfter time.Duration
}

// Replicator runs this region's side of multi-Region key replication.
type Replicator struct {
	svc *Service
	cfg ReplicatorConfig
	log *slog.Logger

	mu       sync.Mutex
	sent     map[string]sentMsg // (to, kind, key) → what was last sent, when
	erased   map[string]uint64  // (to, key) → the confirmed version whose sync was erased
	notified map[string]uint64  // deleted replicas whose primary was told: the version they were deleted at
	warned   map[string]bool    // (to, kind, key) whose send failed, said once
	helloed  bool

	kick chan struct{} // Kick: look for work now
}

type sentMsg struct {
	version uint64
	at      time.Time
	times   int // how often this version was sent
}

// maxResendDoublings bounds the back-off of a message sent again and again
// without confirmation: ResendAfter doubles each time up to 2^5 times it
// (16 min by default). A backlog the peer drains slower than ResendAfter
// would otherwise be sealed and sent whole again every ResendAfter, each
// copy confirmed in turn; a region that was down gets what its inbox's
// source copies when it returns, not a resend.
const maxResendDoublings = 5

// NewReplicator makes the service's replicator.
func (s *Service) NewReplicator(cfg ReplicatorConfig) *Replicator {
	if cfg.Interval == 0 {
		cfg.Interval = time.Second
	}
	if cfg.ResendAfter == 0 {
		cfg.ResendAfter = 30 * time.Second
	}
	r := &Replicator{svc: s, cfg: cfg, log: s.log.With("component", "replicator"),
		sent: map[string]sentMsg{}, erased: map[string]uint64{}, notified: map[string]uint64{}, warned: map[string]bool{}, kick: make(chan struct{}, 1)}
	s.replicator = r
	return r
}

// peer reports whether region is one related keys may be replicated to.
func (r *Replicator) peer(region string) bool {
	_, ok := r.cfg.Peers[region]
	return ok
}

// Kick makes Run look for work now rather than at its next interval: the
// node calls it when a committed event concerns a multi-Region key or a
// peer region, so a change leaves for the other regions at once.
func (r *Replicator) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run receives and sends until ctx ends.
func (r *Replicator) Run(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = r.cfg.Link.Receive(ctx, r.receive)
	}()
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		r.Step(ctx)
		select {
		case <-ctx.Done():
			<-done
			return
		case <-t.C:
		case <-r.kick:
		}
	}
}

// Step sends what the state says is owed: hellos, syncs to replicas that
// have not confirmed their key's version, a handed-over primary role,
// deletions of replicas.
func (r *Replicator) Step(ctx context.Context) {
	if r.svc.Sealed() {
		return
	}
	r.sayHello(ctx)
	for _, k := range r.svc.state.MultiRegionKeys() {
		switch {
		case k.IsPrimary():
			for _, rep := range k.Replicas {
				r.syncReplica(ctx, k, rep)
			}
		case k.Updating: // handing the primary role over: until the new primary confirms
			r.send(ctx, k, k.PrimaryRegion, nil)
		}
	}
	for _, d := range r.svc.state.DeletedReplicas() {
		r.mu.Lock()
		done := r.notified[d.ID] == d.SyncVersion // a replica made again and deleted again is told again
		r.mu.Unlock()
		if _, again := r.svc.state.Key(d.ID); again || d.PrimaryRegion == r.svc.region {
			continue // replicated here again since, or a primary (it had no replicas left)
		}
		if !done && r.ack(ctx, d.PrimaryRegion, ackBody{Account: d.Account, KeyID: d.ID, Version: d.SyncVersion, Deleted: true}) == nil {
			r.mu.Lock()
			r.notified[d.ID] = d.SyncVersion
			r.mu.Unlock()
		}
	}
}

func (r *Replicator) sayHello(ctx context.Context) {
	r.mu.Lock()
	done := r.helloed
	r.mu.Unlock()
	if done {
		return
	}
	body, _ := json.Marshal(helloBody{PublicKey: r.cfg.Key.PublicText()})
	for region := range r.cfg.Peers {
		if err := r.publish(ctx, region, kindHello, "_", body); err != nil {
			r.log.Warn("cannot announce the replication key", "to", region, "error", err)
			return
		}
	}
	r.mu.Lock()
	r.helloed = true
	r.mu.Unlock()
}

// syncReplica sends a primary key's shared properties to one replica's
// region unless it confirmed them, and erases the sent message once it did.
func (r *Replicator) syncReplica(ctx context.Context, k keystate.Key, rep keystate.Replica) {
	if rep.Acked >= k.SyncVersion {
		id := rep.Region + "/" + k.ID
		r.mu.Lock()
		done := r.erased[id] == k.SyncVersion
		r.mu.Unlock()
		if !done && r.cfg.Link.Erase(ctx, rep.Region, kindSync, k.ID) == nil {
			r.mu.Lock()
			r.erased[id] = k.SyncVersion
			r.mu.Unlock()
		}
		return
	}
	r.send(ctx, k, rep.Region, rep.Create)
}

// send sends k's shared properties to region to, unless the same version
// went there less than ResendAfter ago.
func (r *Replicator) send(ctx context.Context, k keystate.Key, to string, create *keystate.ReplicaCreate) {
	id := to + "/" + kindSync + "/" + k.ID
	now := time.Now()
	r.mu.Lock()
	last, ok := r.sent[id]
	r.mu.Unlock()
	if ok && last.version == k.SyncVersion && now.Sub(last.at) < r.cfg.ResendAfter<<min(last.times-1, maxResendDoublings) {
		return
	}
	body, err := r.syncBody(ctx, k, to, create)
	if err == nil {
		data, _ := json.Marshal(body)
		err = r.publish(ctx, to, kindSync, k.ID, data)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil { // tried again every step; said once until it works
		if !r.warned[id] {
			r.warned[id] = true
			r.log.Warn("cannot send a multi-Region key's shared properties yet; retrying", "key", k.ID, "to", to, "error", err)
		}
		return
	}
	delete(r.warned, id)
	times := 1
	if ok && last.version == k.SyncVersion {
		times = last.times + 1
	}
	r.sent[id] = sentMsg{version: k.SyncVersion, at: now, times: times}
}

// syncBody is k's shared properties for region to, its materials sealed to
// that region's replication key.
func (r *Replicator) syncBody(ctx context.Context, k keystate.Key, to string, create *keystate.ReplicaCreate) (*syncBody, error) {
	p, ok := r.svc.state.Peer(to)
	if !ok {
		return nil, errors.New("the region has not announced its replication key yet")
	}
	pub, err := regionkey.ParsePublic(p.PublicKey)
	if err != nil {
		return nil, err
	}
	b := &syncBody{Account: k.Account, KeyID: k.ID, Version: k.SyncVersion, EventID: k.SyncEventID, Primary: k.PrimaryRegion,
		Replicas: replicaRegions(k), Spec: string(k.Spec), Usage: string(k.Usage), Origin: k.Origin, PublicKey: k.PublicKey,
		RotationPeriodDays: k.RotationPeriodDays, NextRotation: k.NextRotation}
	if k.HasMaterial() {
		b.Current = k.CurrentMaterial().ID
	}
	for _, m := range k.Materials {
		sm := syncMaterial{ID: m.ID, Created: m.Created, RotationType: m.RotationType, Imported: m.Imported}
		if !m.Imported { // each region imports imported material itself
			sec, err := r.svc.unwrapped(ctx, m)
			if err != nil {
				return nil, err
			}
			if sm.Sealed, err = regionkey.Seal(pub, sec, sealInfo(r.svc.region, to, k.ID, m.ID)); err != nil {
				return nil, err
			}
		}
		b.Materials = append(b.Materials, sm)
	}
	if create != nil {
		b.Create = &createBody{Description: create.Description, Policy: create.Policy, Tags: create.Tags,
			Actor: create.Actor, EventID: create.EventID}
	}
	return b, nil
}

// sealInfo binds a sealed material to its message.
func sealInfo(from, to, keyID, materialID string) []byte {
	return []byte("keyledger replica material v1\n" + from + "\n" + to + "\n" + keyID + "\n" + materialID)
}

func (r *Replicator) ack(ctx context.Context, to string, b ackBody) error {
	data, _ := json.Marshal(b)
	return r.publish(ctx, to, kindAck, b.KeyID, data)
}

// Handle applies one message from a peer region (the link's Receive calls
// it for each). An error leaves the message to be delivered again; a
// message that is forged, malformed or not for this region is dropped.
func (r *Replicator) Handle(ctx context.Context, m replication.Message) error {
	return r.receive(ctx, m)
}

// receive is Handle.
func (r *Replicator) receive(ctx context.Context, m replication.Message) error {
	body, signer, err := r.open(m)
	if err != nil {
		r.log.Warn("replication message refused", "from", m.From, "kind", m.Kind, "key", m.Key, "reason", err)
		return nil // never applied, never retried: a forgery stays out
	}
	switch m.Kind {
	case kindHello:
		var h helloBody
		if err := json.Unmarshal(body, &h); err != nil {
			return nil
		}
		return r.onHello(ctx, m.From, signer, h)
	case kindSync:
		var b syncBody
		if err := json.Unmarshal(body, &b); err != nil || b.KeyID != m.Key {
			return nil
		}
		return r.onSync(ctx, m.From, &b, m.Stored)
	case kindAck:
		var b ackBody
		if err := json.Unmarshal(body, &b); err != nil || b.KeyID != m.Key {
			return nil
		}
		return r.onAck(ctx, m.From, b)
	}
	return nil
}

func (r *Replicator) onHello(ctx context.Context, from, signer string, h helloBody) error {
	if _, err := regionkey.ParsePublic(h.PublicKey); err != nil {
		return nil
	}
	if p, ok := r.svc.state.Peer(from); ok && p.PublicKey == h.PublicKey {
		return nil
	}
	_, err := changing(ctx, r.svc, func(ctx context.Context) (struct{}, error) {
		if p, ok := r.svc.state.Peer(from); ok && p.PublicKey == h.PublicKey {
			return struct{}{}, nil // registered meanwhile, here or by another instance
		}
		ev := r.serviceEvent("RegisterPeerRegion", "", "", &event.PeerRegionRegistered{Region: from, PublicKey: h.PublicKey,
			WriterID: signer})
		return struct{}{}, r.svc.record(ctx, ev)
	})
	return err
}

// onSync applies a key's shared properties sent from region from.
func (r *Replicator) onSync(ctx context.Context, from string, b *syncBody, stored time.Time) error {
	k, exists := r.svc.state.Key(b.KeyID)
	deleted, wasDeleted := r.svc.state.DeletedKey(b.KeyID)
	switch {
	case !exists && wasDeleted && (b.Create == nil || b.Version <= deleted.SyncVersion):
		// Sent before the replica here was deleted: say so. A newer
		// ReplicateKey (a higher version, with what to create it with)
		// makes a replica here again.
		return r.ack(ctx, from, ackBody{Account: b.Account, KeyID: b.KeyID, Version: deleted.SyncVersion, Deleted: true})
	case !exists && (b.Create == nil || from != b.Primary):
		return nil // nothing to create it with: the primary sends that
	case exists && (!k.MultiRegion || k.Account != b.Account || (from != b.Primary && from != k.PrimaryRegion)):
		return nil // not a related key, or not a region that speaks for it
	case exists && (b.Version < k.SyncVersion || (b.Version == k.SyncVersion && !k.Updating)):
		if !k.IsPrimary() { // held already: confirm again
			return r.ack(ctx, k.PrimaryRegion, ackBody{Account: k.Account, KeyID: k.ID, Version: k.SyncVersion, EventID: k.SyncEventID})
		}
		return nil
	}
	held := map[string]bool{}
	for _, m := range k.Materials {
		held[m.ID] = true
	}
	var mats []event.SyncedMaterial
	opened := map[string]secret.Bytes{} // handed to the cache once recorded
	defer func() {
		for _, s := range opened {
			s.Clear()
		}
	}()
	for _, m := range b.Materials {
		sm := event.SyncedMaterial{Material: event.MaterialRef{ID: m.ID}, Created: m.Created, RotationType: m.RotationType, Imported: m.Imported}
		if !m.Imported && !held[m.ID] {
			sec, err := r.cfg.Key.Open(m.Sealed, sealInfo(from, r.svc.region, b.KeyID, m.ID))
			if err != nil {
				r.log.Warn("a replicated material does not open; message refused", "from", from, "key", b.KeyID, "material", m.ID)
				return nil
			}
			opened[m.ID] = sec
			if sm.Material, err = r.svc.storeMaterialAs(ctx, m.ID, sec); err != nil {
				return err
			}
		} else if !m.Imported {
			continue // held: recorded when it came
		}
		mats = append(mats, sm)
	}
	shared := event.MultiRegionShared{SourceRegion: from, SourceEventID: b.EventID, Version: b.Version, PrimaryRegion: b.Primary,
		ReplicaRegions: b.Replicas, RotationPeriodDays: b.RotationPeriodDays, NextRotation: b.NextRotation,
		Materials: mats, CurrentMaterial: b.Current}
	applied, err := changing(ctx, r.svc, func(ctx context.Context) (bool, error) {
		k, exists := r.svc.state.Key(b.KeyID)
		if exists && b.Version <= k.SyncVersion && !k.Updating {
			return false, nil // applied meanwhile
		}
		var ev *event.Event
		if !exists {
			c := b.Create
			ev = r.serviceEvent("CreateKey", b.Account, b.KeyID, &event.ReplicaKeyCreated{MultiRegionShared: shared,
				KeySpec: b.Spec, KeyUsage: b.Usage, Origin: b.Origin, Description: c.Description, Policy: c.Policy, Tags: c.Tags,
				PublicKey: b.PublicKey})
			ev.Actor = c.Actor
		} else {
			ev = r.serviceEvent("SynchronizeMultiRegionKey", b.Account, b.KeyID, &event.MultiRegionKeySynchronized{MultiRegionShared: shared})
		}
		if err := r.svc.record(ctx, ev); err != nil {
			return false, err
		}
		for id, sec := range opened {
			r.svc.remember(id, sec)
			delete(opened, id)
		}
		return true, nil
	})
	if err != nil || !applied {
		return err
	}
	k, _ = r.svc.state.Key(b.KeyID)
	r.log.Info("multi-Region key synchronized", "key", b.KeyID, "from", from, "version", b.Version,
		"source_event", b.EventID, "event", k.SyncEventID, "lag", time.Since(stored).Round(time.Millisecond))
	if k.IsPrimary() {
		return nil // the primary role came here: its syncs go out from Step
	}
	return r.ack(ctx, k.PrimaryRegion, ackBody{Account: k.Account, KeyID: k.ID, Version: k.SyncVersion, EventID: k.SyncEventID})
}

// onAck records, on the primary, what a replica's region confirmed.
func (r *Replicator) onAck(ctx context.Context, from string, b ackBody) error {
	recorded, err := changing(ctx, r.svc, func(ctx context.Context) (bool, error) {
		k, ok := r.svc.state.Key(b.KeyID)
		if !ok || k.Account != b.Account {
			return false, nil
		}
		if !k.IsPrimary() {
			// A move of the primary role here to from that from can no
			// longer take: its replica was deleted before the move reached
			// it. The role comes back (keystate: the move is undone).
			if !k.Updating || !b.Deleted || from != k.PrimaryRegion {
				return false, nil
			}
			return true, r.svc.record(ctx, r.serviceEvent("SynchronizeMultiRegionKey", k.Account, k.ID,
				&event.ReplicaAcknowledged{Region: from, Version: b.Version, SourceEventID: b.EventID, Deleted: true}))
		}
		rep, ok := k.Replica(from)
		if !ok || (!b.Deleted && b.Version <= rep.Acked) || b.Version > k.SyncVersion || (b.Deleted && b.Version < rep.Since) {
			return false, nil
		}
		return true, r.svc.record(ctx, r.serviceEvent("SynchronizeMultiRegionKey", k.Account, k.ID,
			&event.ReplicaAcknowledged{Region: from, Version: b.Version, SourceEventID: b.EventID, Deleted: b.Deleted}))
	})
	if err != nil || !recorded {
		return err
	}
	if b.Deleted { // no longer a replica: what was sent to it goes, material and all
		if err := r.cfg.Link.Erase(ctx, from, kindSync, b.KeyID); err != nil {
			r.log.Warn("a deleted replica's last sync stays in the outbox until the next erase", "key", b.KeyID, "to", from, "error", err)
		}
	}
	return nil
}

// serviceEvent is an event this region records on its own (AWS's
// AwsServiceEvent): no caller.
func (r *Replicator) serviceEvent(op, account, keyID string, body event.Body) *event.Event {
	return &event.Event{Time: r.svc.clock.Now(), Operation: op, Account: account, Region: r.svc.region, KeyID: keyID, Body: body}
}

// The wire form. Every message is an envelope whose signature (the sending
// region's writer key, Ed25519) covers the addressing and the body.

type envelope struct {
	V      int             `json:"v"`
	From   string          `json:"from"`
	To     string          `json:"to"`
	Kind   string          `json:"kind"`
	Key    string          `json:"key"`
	Writer string          `json:"writer"`
	Body   json.RawMessage `json:"body"`
	Sig    []byte          `json:"sig"`
}

type helloBody struct {
	PublicKey string `json:"publicKey"`
}

type syncBody struct {
	Account            string         `json:"account"`
	KeyID              string         `json:"keyId"`
	Version            uint64         `json:"version"`
	EventID            string         `json:"eventId"`
	Primary            string         `json:"primary"`
	Replicas           []string       `json:"replicas"`
	Spec               string         `json:"spec"`
	Usage              string         `json:"usage"`
	Origin             string         `json:"origin"`
	PublicKey          string         `json:"publicKey,omitempty"`
	RotationPeriodDays int            `json:"rotationPeriodDays,omitempty"`
	NextRotation       time.Time      `json:"nextRotation,omitzero"`
	Materials          []syncMaterial `json:"materials"`
	Current            string         `json:"current,omitempty"`
	Create             *createBody    `json:"create,omitempty"`
}

type syncMaterial struct {
	ID           string    `json:"id"`
	Created      time.Time `json:"created"`
	RotationType string    `json:"rotationType,omitempty"`
	Imported     bool      `json:"imported,omitempty"`
	Sealed       []byte    `json:"sealed,omitempty"` // regionkey.Seal to the recipient
}

type createBody struct {
	Description string            `json:"description,omitempty"`
	Policy      string            `json:"policy"`
	Tags        map[string]string `json:"tags,omitempty"`
	Actor       *event.Actor      `json:"actor,omitempty"`
	EventID     string            `json:"eventId"`
}

type ackBody struct {
	Account string `json:"account"`
	KeyID   string `json:"keyId"`
	Version uint64 `json:"version"`
	EventID string `json:"eventId,omitempty"`
	Deleted bool   `json:"deleted,omitempty"`
}

func signingInput(from, to, kind, key string, body []byte) []byte {
	sum := sha256.Sum256(body)
	return append([]byte("keyledger replication message v1\n"+from+"\n"+to+"\n"+kind+"\n"+key+"\n"), sum[:]...)
}

func (r *Replicator) publish(ctx context.Context, to, kind, key string, body []byte) error {
	from := r.svc.region
	env := envelope{V: 1, From: from, To: to, Kind: kind, Key: key, Writer: r.cfg.Writer.ID(), Body: body,
		Sig: r.cfg.Writer.SignRaw(signingInput(from, to, kind, key, body))}
	data, err := json.Marshal(env)
	if err != nil {
		return err
	}
	return r.cfg.Link.Publish(ctx, to, kind, key, data)
}

// open checks a message's envelope and signature and returns its body and
// the id of the writer that signed it.
func (r *Replicator) open(m replication.Message) ([]byte, string, error) {
	var env envelope
	if err := json.Unmarshal(m.Data, &env); err != nil || env.V != 1 {
		return nil, "", errors.New("malformed envelope")
	}
	if env.From != m.From || env.To != m.To || env.Kind != m.Kind || env.Key != m.Key || env.To != r.svc.region {
		return nil, "", errors.New("envelope does not match its subject")
	}
	trusted, ok := r.cfg.Peers[env.From]
	if !ok {
		return nil, "", fmt.Errorf("region %s is not a peer", env.From)
	}
	in := signingInput(env.From, env.To, env.Kind, env.Key, env.Body)
	if !slices.ContainsFunc(trusted, func(pub ed25519.PublicKey) bool {
		return writer.ID(pub) == env.Writer && ed25519.Verify(pub, in, env.Sig)
	}) {
		return nil, "", errors.New("not signed by a writer trusted for its region")
	}
	return env.Body, env.Writer, nil
}
