package snapshot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/keyledger/keyledger/ledger/internal/directget"
)

// Reading the object store without a consumer. nats.go lists objects with
// a watcher and reads them with an ordered push consumer; a push consumer
// delivers to a subject its creator names, so the read-only audit identity
// is given no consumer API at all. These read the same stored layout
// (nats.go jetstream/object.go) with direct gets instead:
//
//	$O.<bucket>.M.<base64url name>  an object's meta (ObjectInfo JSON), last one wins
//	$O.<bucket>.C.<nuid>            its chunks, in order
//
// and check what nats.go checks: the chunk count, the size and the SHA-256
// digest.

// readStall is how long a read waits for the next message of a batch.
const readStall = 5 * time.Second

func (s *Store) metaSubject(name string) string {
	return "$O." + s.bucket + ".M." + base64.URLEncoding.EncodeToString([]byte(name))
}

// infos returns the live objects' meta, one per name.
func (s *Store) infos(ctx context.Context) ([]jetstream.ObjectInfo, error) {
	last := map[string][]byte{} // meta subject → its newest meta
	var order []string
	seq := uint64(1)
	for {
		res, err := directget.Batch(ctx, s.nc, s.stream, directget.Request{Seq: seq, Subject: "$O." + s.bucket + ".M.>", Batch: directget.MaxBatch}, readStall,
			func(m *nats.Msg, _ uint64) error {
				subj := m.Header.Get(jetstream.SubjectHeader)
				if _, seen := last[subj]; !seen {
					order = append(order, subj)
				}
				last[subj] = m.Data
				return nil
			})
		if err != nil {
			return nil, fmt.Errorf("snapshot: listing: %w", err)
		}
		if !res.Ended {
			return nil, fmt.Errorf("snapshot: listing: stream %s stalled", s.stream)
		}
		if res.Last == 0 || res.Pending == 0 {
			break
		}
		seq = res.Last + 1
	}
	var out []jetstream.ObjectInfo
	for _, subj := range order {
		var info jetstream.ObjectInfo
		if json.Unmarshal(last[subj], &info) != nil || info.Deleted {
			continue // not an object we can read; Load would refuse it anyway
		}
		out = append(out, info)
	}
	return out, nil
}

// get reads one object's bytes and checks them against its meta.
func (s *Store) get(ctx context.Context, name string) ([]byte, error) {
	mm, err := s.meta.GetLastMsgForSubject(ctx, s.metaSubject(name))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, jetstream.ErrObjectNotFound
	}
	if err != nil {
		return nil, err
	}
	var info jetstream.ObjectInfo
	if err := json.Unmarshal(mm.Data, &info); err != nil || info.NUID == "" {
		return nil, jetstream.ErrBadObjectMeta
	}
	if info.Deleted {
		return nil, jetstream.ErrObjectNotFound
	}
	if info.Opts != nil && info.Opts.Link != nil {
		return nil, jetstream.ErrBadObjectMeta // snapshots are never links
	}
	data := make([]byte, 0, min(info.Size, 64<<20))
	chunks, seq := uint32(0), uint64(1)
	for chunks < info.Chunks {
		res, err := directget.Batch(ctx, s.nc, s.stream,
			directget.Request{Seq: seq, Subject: "$O." + s.bucket + ".C." + info.NUID, Batch: int(min(info.Chunks-chunks, directget.MaxBatch))}, readStall,
			func(m *nats.Msg, _ uint64) error {
				data = append(data, m.Data...)
				chunks++
				return nil
			})
		if err != nil {
			return nil, fmt.Errorf("snapshot: reading %s: %w", name, err)
		}
		if res.Last == 0 {
			if !res.Ended {
				return nil, fmt.Errorf("snapshot: reading %s: stream %s stalled", name, s.stream)
			}
			break // no more chunks: fewer than the meta says
		}
		seq = res.Last + 1
	}
	sum := sha256.Sum256(data)
	want, err := jetstream.DecodeObjectDigest(info.Digest)
	if chunks != info.Chunks || uint64(len(data)) != info.Size || err != nil || !bytes.Equal(sum[:], want) {
		return nil, jetstream.ErrDigestMismatch
	}
	return data, nil
}
