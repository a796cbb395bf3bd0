package ledger

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestHeardQuorum: only an answer naming a leader that heard from a
// majority of the group lately proves the stream can store; a replica cut
// off names no leader, and a leader cut off heard from its replicas only
// before the cut.
func TestHeardQuorum(t *testing.T) {
	peer := func(active time.Duration, offline bool) *jetstream.PeerInfo {
		return &jetstream.PeerInfo{Name: "n", Active: active, Offline: offline}
	}
	for _, tc := range []struct {
		name string
		ci   *jetstream.ClusterInfo
		want bool
	}{
		{"no cluster info", nil, true},
		{"a server outside any cluster", &jetstream.ClusterInfo{Leader: "n0"}, true},
		{"a cut-off replica, leaderless", &jetstream.ClusterInfo{Replicas: []*jetstream.PeerInfo{peer(0, false), peer(0, false)}}, false},
		{"R3, both replicas heard", &jetstream.ClusterInfo{Leader: "n0", Replicas: []*jetstream.PeerInfo{peer(time.Second, false), peer(2*time.Second, false)}}, true},
		{"R3, one replica cut off", &jetstream.ClusterInfo{Leader: "n0", Replicas: []*jetstream.PeerInfo{peer(time.Second, false), peer(time.Minute, false)}}, true},
		{"R3, a leader cut off", &jetstream.ClusterInfo{Leader: "n2", Replicas: []*jetstream.PeerInfo{peer(6*time.Second, false), peer(6*time.Second, false)}}, false},
		{"R3, one replica offline", &jetstream.ClusterInfo{Leader: "n0", Replicas: []*jetstream.PeerInfo{peer(time.Second, false), peer(0, true)}}, true},
		{"R3, both offline", &jetstream.ClusterInfo{Leader: "n0", Replicas: []*jetstream.PeerInfo{peer(0, true), peer(0, true)}}, false},
		{"R5, two of four replicas heard", &jetstream.ClusterInfo{Leader: "n0", Replicas: []*jetstream.PeerInfo{peer(time.Second, false), peer(time.Second, false), peer(time.Minute, false), peer(time.Minute, false)}}, true},
		{"R5, one of four replicas heard", &jetstream.ClusterInfo{Leader: "n0", Replicas: []*jetstream.PeerInfo{peer(time.Second, false), peer(time.Minute, false), peer(time.Minute, false), peer(time.Minute, false)}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := heardQuorum(tc.ci, quorumFresh); got != tc.want {
				t.Errorf("heardQuorum = %v, want %v", got, tc.want)
			}
		})
	}
	// While stalled, a replica counts only if heard from since the stall
	// began: a leader cut off a moment ago heard from its replicas before.
	ci := &jetstream.ClusterInfo{Leader: "n2", Replicas: []*jetstream.PeerInfo{peer(1500*time.Millisecond, false), peer(1500*time.Millisecond, false)}}
	if heardQuorum(ci, time.Second) {
		t.Error("replicas heard from 1.5 s ago count toward a stall that began 1 s ago")
	}
}

// TestAskLeader: STREAM.INFO is answered by the stream's leader and by
// every member that knows it has no leader, in either order; only the
// leader's answer with a quorum in touch counts, and answers that are all
// someone else's end the ask at once rather than at its deadline.
func TestAskLeader(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.NewWithAPIPrefix(nc, "fake.API")
	if err != nil {
		t.Fatal(err)
	}
	l := &Ledger{js: js}
	led := `{"config":{"name":"S"},"state":{"last_seq":7},"cluster":{"leader":"n0","replicas":[{"name":"n1","current":true,"active":1000000},{"name":"n2","active":60000000000}]}}`
	unled := `{"config":{"name":"S"},"state":{"last_seq":5},"cluster":{"replicas":[{"name":"n0"},{"name":"n1"}]}}`
	stale := `{"config":{"name":"S"},"state":{"last_seq":5},"cluster":{"leader":"n2","replicas":[{"name":"n0","active":6000000000},{"name":"n1","active":6000000000}]}}`
	// answer replies to the n-th request (from 1) with each of answers,
	// a moment apart.
	answer := func(t *testing.T, stream string, from int, answers ...string) {
		var n int
		sub, err := nc.Subscribe("fake.API.STREAM.INFO."+stream, func(m *nats.Msg) {
			if n++; n < from {
				return
			}
			for _, a := range answers {
				m.Respond([]byte(a))
				time.Sleep(50 * time.Millisecond)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sub.Unsubscribe() })
	}
	for _, tc := range []struct {
		name     string
		from     int
		answers  []string
		wantSeq  uint64
		wantErr  error
		maxTaken time.Duration
	}{
		{"the leader alone", 1, []string{led}, 7, nil, 500 * time.Millisecond},
		{"a leaderless member first", 1, []string{unled, led}, 7, nil, 500 * time.Millisecond},
		{"leaderless members only", 1, []string{unled, unled}, 0, ErrNoQuorum, 2 * time.Second},
		{"a leader out of touch", 1, []string{stale}, 0, ErrNoQuorum, 2 * time.Second},
		{"JetStream's cluster without a leader", 1, []string{`{"error":{"code":503,"err_code":10008,"description":"JetStream system temporarily unavailable"}}`}, 0, ErrNoQuorum, 2 * time.Second},
		{"no stream", 1, []string{`{"error":{"code":404,"err_code":10059,"description":"stream not found"}}`}, 0, jetstream.ErrStreamNotFound, 500 * time.Millisecond},
		{"the first request lost", 2, []string{led}, 7, nil, 2500 * time.Millisecond},
		{"nobody there", 1, nil, 0, jetstream.ErrNoStreamResponse, 500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream := strings.ReplaceAll(tc.name, " ", "_")
			stream = strings.ReplaceAll(stream, "'", "")
			if tc.answers != nil {
				answer(t, stream, tc.from, tc.answers...)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			began := time.Now()
			info, err := l.askLeader(ctx, stream, quorumFresh)
			took := time.Since(began)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("askLeader: %v, want %v", err, tc.wantErr)
			}
			if err == nil && info.State.LastSeq != tc.wantSeq {
				t.Errorf("the answer taken says last sequence %d, want %d", info.State.LastSeq, tc.wantSeq)
			}
			if took > tc.maxTaken {
				t.Errorf("askLeader took %v, want at most %v", took, tc.maxTaken)
			}
		})
	}
}
