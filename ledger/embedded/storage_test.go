package embedded

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// TestWriteFailuresRecognised pins the nats-server log lines that mean a
// write was lost (their wording is the only signal the server gives).
func TestWriteFailuresRecognised(t *testing.T) {
	for msg, want := range map[string]bool{
		"Filestore [KEYLEDGER] Critical write error: write /d/1.blk: no space left on device":             true,
		"JetStream stream '$G > KEYLEDGER' critical write error: write /d/1.blk: no space left on device": true,
		"Filesystem permission denied while writing msg, disabling JetStream: open /d: permission denied": true,
		"JetStream out of space, will be DISABLED":                                                        true,
		"Ignoring non-write error: unexpected EOF":                                                        false,
		"Readloop processing time: 2.1s":                                                                  false,
	} {
		if got := isWriteFailure(msg); got != want {
			t.Errorf("isWriteFailure(%q) = %v, want %v", msg, got, want)
		}
	}
}

// TestStorageRefusesAndHeals: below the reserve CheckWrite refuses with
// ErrDiskFull; a reported write failure ends WriteFault and is refused
// until CheckWrite reopens JetStream, after which the stream takes writes.
func TestStorageRefusesAndHeals(t *testing.T) {
	srv, err := Start(Options{DataDir: filepath.Join(t.TempDir(), "js"), MinFreeDisk: 1 << 62})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	if err := srv.CheckWrite(1); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("CheckWrite below the reserve = %v, want ErrDiskFull", err)
	}
	srv.storage.reserve = -1
	if err := srv.CheckWrite(1); err != nil {
		t.Fatalf("CheckWrite with no reserve: %v", err)
	}

	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s"}}); err != nil {
		t.Fatal(err)
	}
	fault := srv.WriteFault()
	srv.storage.writeFailed("Filestore [S] Critical write error: write /d/1.blk: no space left on device")
	select {
	case <-fault.Done():
	default:
		t.Fatal("WriteFault not done after a write failure")
	}
	if err := context.Cause(fault); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("fault cause %v, want ErrDiskFull", err)
	}
	srv.storage.lastHeal = time.Now() // just healed: the next try waits healEvery
	if err := srv.CheckWrite(1); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("CheckWrite right after a fault = %v, want the fault", err)
	}
	srv.storage.lastHeal = time.Time{}
	if err := srv.CheckWrite(1); err != nil {
		t.Fatalf("CheckWrite did not heal: %v", err)
	}
	if srv.WriteFault().Err() != nil {
		t.Fatal("WriteFault still done after healing")
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := js.Publish(pctx, "s", []byte("after reopening")); err != nil {
		t.Fatalf("publish after JetStream was reopened: %v", err)
	}
}

// TestStorageStatfsCache: with plenty of room, one statfs serves the
// checks of the next statFresh; close to the reserve (counting what was
// checked for since), and after statFresh, every check looks again, and
// a disk that fills is refused.
func TestStorageStatfsCache(t *testing.T) {
	s := newStorage(t.TempDir(), 4<<20, server.JetStreamConfig{})
	calls, free := 0, int64(1<<40)
	s.statfs = func(string) (int64, error) { calls++; return free, nil }
	for range 100 {
		if got, err := s.freeBytes(1 << 20); err != nil || got > free || got < free-100<<20 {
			t.Fatalf("freeBytes = %d, %v (free %d)", got, err, free)
		}
	}
	if calls != 1 {
		t.Fatalf("%d statfs calls for 100 checks with a terabyte free, want 1", calls)
	}
	s.statAt = time.Now().Add(-statFresh)
	s.freeBytes(1)
	if calls != 2 {
		t.Fatalf("%d statfs calls after statFresh, want 2", calls)
	}
	free, calls = s.reserve+statSlack+8<<20, 0
	s.statAt = time.Time{}
	for range 20 {
		s.freeBytes(1 << 20)
		free -= 1 << 20 // the write
	}
	if calls < 12 {
		t.Fatalf("%d statfs calls for 20 checks of 1 MiB each with 8 MiB of slack, want one per check past the slack", calls)
	}
	free = s.reserve // the disk fills behind our back
	s.statAt = time.Time{}
	if got, _ := s.freeBytes(1); got != free {
		t.Fatalf("freeBytes = %d on a full disk, want %d", got, free)
	}
}
