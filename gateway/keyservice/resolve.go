package keyservice

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/keyledger/keyledger/crypto/keyspec"
	"github.com/keyledger/keyledger/projections/keystate"
)

// keyArn is the ARN of the key id in account, in this service's region.
func (s *Service) keyArn(account, id string) string {
	return s.arns.get(s.region, account, id)
}

// arnCache keeps the ARNs of the keys requests name: authorization and the
// answer each needed one, built afresh, on every request. An ARN never
// changes, so nothing is invalidated; the cache is emptied when it holds
// maxCachedARNs, which bounds it whatever ids requests name.
type arnCache struct {
	mu   sync.RWMutex
	arns map[accountKey]string
}

type accountKey struct{ account, id string }

const maxCachedARNs = 4096 // about 1 MB at most

func (c *arnCache) get(region, account, id string) string {
	k := accountKey{account, id}
	c.mu.RLock()
	arn, ok := c.arns[k]
	c.mu.RUnlock()
	if ok {
		return arn
	}
	arn = "arn:aws:kms:" + region + ":" + account + ":key/" + id
	c.mu.Lock()
	if c.arns == nil || len(c.arns) >= maxCachedARNs {
		c.arns = make(map[accountKey]string)
	}
	c.arns[accountKey{strings.Clone(account), strings.Clone(id)}] = arn
	c.mu.Unlock()
	return arn
}

// arnOf is a key's ARN.
func (s *Service) arnOf(k keystate.Key) string { return s.keyArn(k.Account, k.ID) }

// aliasArn is the ARN of the alias name ("alias/…") in account.
func (s *Service) aliasArn(account, name string) string {
	return fmt.Sprintf("arn:aws:kms:%s:%s:%s", s.region, account, name)
}

// resolve finds the key a KeyId names: a key id or key ARN, and with
// allowAlias an alias name or alias ARN too. Ids and alias names are looked
// up in the caller's account; an ARN may name another account's key.
func (s *Service) resolve(c Caller, ref string, allowAlias bool) (keystate.Key, error) {
	if ref == "" {
		return keystate.Key{}, missing("keyId")
	}
	if len(ref) > 2048 {
		return keystate.Key{}, tooLong("keyId", ref, 2048)
	}
	account, id := c.Account, ref
	if strings.HasPrefix(ref, "arn:") {
		parts := splitARN(ref)
		if len(parts) != 6 || parts[1] != "aws" || parts[2] != "kms" || len(parts[4]) != 12 {
			return keystate.Key{}, errorf(CodeNotFound, "Invalid arn %s", ref)
		}
		if parts[3] != s.region {
			return keystate.Key{}, errorf(CodeNotFound, "Key '%s' does not exist", ref)
		}
		account, id = parts[4], parts[5]
		if strings.HasPrefix(id, "key/") {
			id = strings.TrimPrefix(id, "key/")
		} else if !strings.HasPrefix(id, "alias/") {
			return keystate.Key{}, errorf(CodeNotFound, "Invalid arn %s", ref)
		}
	}
	if strings.HasPrefix(id, "alias/") {
		if !allowAlias {
			return keystate.Key{}, errorf(CodeNotFound, "Invalid keyId '%s'", ref)
		}
		a, ok := s.state.Alias(account, id)
		if !ok && s.caughtUp() {
			a, ok = s.state.Alias(account, id)
		}
		if !ok {
			return keystate.Key{}, errorf(CodeNotFound, "Alias %s is not found.", s.aliasArn(account, id))
		}
		id = a.KeyID
	}
	k, ok := s.state.Key(id)
	if (!ok || k.Account != account) && looksLikeKeyID(id) && s.caughtUp() {
		k, ok = s.state.Key(id)
	}
	if !ok || k.Account != account {
		if !looksLikeKeyID(id) {
			return keystate.Key{}, errorf(CodeNotFound, "Invalid keyId '%s'", ref)
		}
		return keystate.Key{}, errorf(CodeNotFound, "Key '%s' does not exist", s.keyArn(account, id))
	}
	return k, nil
}

func splitARN(arn string) []string { return strings.SplitN(arn, ":", 6) }

func looksLikeKeyID(id string) bool {
	if mrk, ok := strings.CutPrefix(id, "mrk-"); ok {
		_, err := hex.DecodeString(mrk)
		return len(mrk) == 32 && err == nil && strings.ToLower(mrk) == mrk
	}
	if len(id) != 36 {
		return false
	}
	for i, c := range id {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'):
		default:
			return false
		}
	}
	return true
}

// usable checks that k may perform a cryptographic operation of usage u.
func (s *Service) usable(k keystate.Key, u keyspec.Usage) error {
	switch k.State {
	case keystate.Enabled:
	case keystate.Disabled:
		return errorf(CodeDisabled, "%s is disabled.", s.arnOf(k))
	case keystate.PendingDeletion:
		return errorf(CodeInvalidState, "%s is pending deletion.", s.arnOf(k))
	case keystate.PendingImport:
		return errorf(CodeInvalidState, "%s is pending import.", s.arnOf(k))
	case keystate.PendingReplicaDeletion:
		return errorf(CodeInvalidState, "%s is pending replica deletion.", s.arnOf(k))
	default:
		return errorf(CodeInvalidState, "%s is %s.", s.arnOf(k), k.State)
	}
	if k.Usage != u {
		return errorf(CodeInvalidKeyUsage, "%s key usage is %s which is not valid for this operation.", s.arnOf(k), k.Usage)
	}
	return nil
}

// notPendingDeletion is the check management operations make.
func (s *Service) notPendingDeletion(k keystate.Key) error {
	switch k.State {
	case keystate.PendingDeletion:
		return errorf(CodeInvalidState, "%s is pending deletion.", s.arnOf(k))
	case keystate.PendingReplicaDeletion:
		return errorf(CodeInvalidState, "%s is pending replica deletion.", s.arnOf(k))
	}
	return nil
}

// caughtUp has this instance fold everything the ledger holds now, so that
// a key or alias another instance created a moment ago is found rather
// than answered NotFoundException (what AWS's eventual consistency would
// allow). Concurrent callers share one catch-up; it reports whether one
// was made. It is the slow path of a lookup that failed, bounded by a
// second.
func (s *Service) caughtUp() bool {
	if s.ledger == nil {
		return false
	}
	s.syncMu.Lock()
	call := s.syncing
	if call == nil {
		call = &syncCall{done: make(chan struct{})}
		s.syncing = call
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			call.err = s.ledger.Sync(ctx)
			cancel()
			s.syncMu.Lock()
			s.syncing = nil
			s.syncMu.Unlock()
			close(call.done)
		}()
	}
	s.syncMu.Unlock()
	<-call.done
	return call.err == nil
}

// syncCall is one catch-up callers share.
type syncCall struct {
	done chan struct{}
	err  error
}
