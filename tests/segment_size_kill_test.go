package tests

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// TestSegmentSizeUnderKillLoop: serve --segment-size 8KiB under Encrypts
// and key changes from several connections, killed with SIGKILL at
// random moments (mid-roll included, with rolls this frequent) and
// restarted: every ciphertext answered decrypts after the last restart,
// audit verify passes, and the segments are about as many as the bytes
// call for (no roll loop).
func TestSegmentSizeUnderKillLoop(t *testing.T) {
	dataDir := t.TempDir()
	port := freePort(t)
	admin := testCredentials["admin"]
	c := newClient("http://127.0.0.1:"+strconv.Itoa(port), admin[0], admin[1])
	ctx := context.Background()
	type sealed struct{ plain, blob []byte }
	var mu sync.Mutex
	var blobs []sealed
	srv := serveWithArgs(t, dataDir, port, "--segment-size", "8KiB")
	k, err := c.CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	key := *k.KeyMetadata.KeyId
	for round := range 4 {
		stopLoad := make(chan struct{})
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stopLoad:
						return
					default:
					}
					if g == 0 && i%5 == 0 {
						_, _ = c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(key)})
						_, _ = c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(key)})
						continue
					}
					plain := []byte(fmt.Sprintf("r%d g%d i%d", round, g, i))
					e, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(key), Plaintext: plain})
					if err == nil {
						mu.Lock()
						blobs = append(blobs, sealed{plain, e.CiphertextBlob})
						mu.Unlock()
					}
				}
			}()
		}
		time.Sleep(time.Duration(300+rand.IntN(700)) * time.Millisecond)
		_ = srv.Process.Signal(syscall.SIGKILL)
		_ = srv.Wait()
		close(stopLoad)
		wg.Wait()
		srv = serveWithArgs(t, dataDir, port, "--segment-size", "8KiB")
		_, _ = c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(key)})
	}
	for i, b := range blobs {
		d, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: b.blob})
		if err != nil || string(d.Plaintext) != string(b.plain) {
			t.Fatalf("ciphertext %d of %d answered before a kill does not decrypt: %v", i, len(blobs), err)
		}
	}
	stop(t, srv)
	if code, out := cli(t, "audit", "verify", "--data-dir", dataDir); code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("audit verify: exit %d\n%s", code, out)
	}
	segs := 0
	_ = filepath.WalkDir(dataDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && strings.HasPrefix(d.Name(), "KEYLEDGER") && filepath.Base(filepath.Dir(p)) == "streams" {
			segs++
		}
		return nil
	})
	t.Logf("%d ciphertexts decrypt after 4 kills; %d segment streams", len(blobs), segs)
	// An Encrypt event is a few hundred bytes: 8KiB is some 20-40 of them.
	if max := len(blobs)/8 + 10; segs > max {
		t.Errorf("%d segments for %d Encrypts under 8KiB each, want at most %d", segs, len(blobs), max)
	}
}
