package tests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/keyledger/keyledger/ledger/chain"
)

// failFast is how long a request may take to fail on a full disk: well
// under the 10 s PublishTimeout it used to wait out.
const failFast = 3 * time.Second

// TestDiskFullFailsFastAndHeals fills a small tmpfs under a running
// instance: requests fail at once with KMSInternalException and the log
// names the cause; once space is freed writes resume without a restart;
// nothing acknowledged is lost and the chain verifies, live and after a
// restart. "server ENOSPC" turns keyledger's free-space check off, so
// nats-server's own write fails (its file store then refuses every write
// until JetStream is reopened); "reserve" is the default, where keyledger
// refuses before the disk is full.
func TestDiskFullFailsFastAndHeals(t *testing.T) {
	for _, tc := range []struct {
		name    string
		minFree int64
		cause   string // in the log
	}{
		{"server ENOSPC", -1, "no space left on device"},
		{"reserve", 0, "the data directory's disk is full"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mnt := mountTmpfs(t, "40m")
			in := start(t, func(i *instance) { i.dir, i.minFree = mnt, tc.minFree })
			ctx := context.Background()

			var acked []string // keys whose CreateKey was answered OK
			key := in.createKey("before")
			acked = append(acked, key)
			enc, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &key, Plaintext: []byte("kept")})
			if err != nil {
				t.Fatal(err)
			}

			filler := fillDisk(t, mnt)
			// Pages already allocated may still take a few small writes;
			// from the first refusal on, every request fails fast.
			failed, slowest := 0, time.Duration(0)
			for n := 0; n < 300 && failed < 5; n++ {
				began := time.Now()
				op := "CreateKey"
				var err error
				if n%2 == 0 {
					var out *kms.CreateKeyOutput
					if out, err = in.kms.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String(fmt.Sprintf("full-%d", n))}); err == nil {
						acked = append(acked, *out.KeyMetadata.KeyId)
					}
				} else {
					op = "Encrypt"
					_, err = in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &key, Plaintext: []byte("while full")})
				}
				took := time.Since(began)
				if err == nil {
					if failed > 0 {
						t.Fatalf("%s succeeded after the disk was full and nothing was freed", op)
					}
					continue
				}
				failed++
				slowest = max(slowest, took)
				wantCode(t, err, "KMSInternalException")
				if took > failFast {
					t.Fatalf("%s took %v to fail on a full disk, want under %v", op, took, failFast)
				}
			}
			if failed == 0 {
				t.Fatal("no request failed on a full disk")
			}
			t.Logf("%d requests failed on the full disk, the slowest in %v", failed, slowest)
			logs := in.logs.String()
			if !strings.Contains(logs, tc.cause) {
				t.Fatalf("the log does not name the cause %q:\n%s", tc.cause, tail(logs, 4000))
			}
			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			var healed error
			freed := time.Now()
			for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
				var out *kms.CreateKeyOutput
				if out, healed = in.kms.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("after")}); healed == nil {
					acked = append(acked, *out.KeyMetadata.KeyId)
					break
				}
			}
			if healed != nil {
				t.Fatalf("writes did not resume after space was freed: %v\n%s", healed, tail(in.logs.String(), 4000))
			}
			t.Logf("writes resumed %v after space was freed", time.Since(freed).Round(time.Millisecond))
			for j := 0; j < 20; j++ {
				if _, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &key, Plaintext: []byte("after")}); err != nil {
					t.Fatalf("encrypt %d after recovery: %v", j, err)
				}
			}
			if _, err := chain.Verify(ctx, in.node.Ledger); err != nil {
				t.Fatalf("chain after recovery: %v", err)
			}

			in.restart()
			if _, err := chain.Verify(ctx, in.node.Ledger); err != nil {
				t.Fatalf("chain after restart: %v", err)
			}
			for _, id := range acked {
				if _, err := in.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)}); err != nil {
					t.Fatalf("acknowledged key %s lost: %v", id, err)
				}
			}
			dec, err := in.kms.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
			if err != nil || string(dec.Plaintext) != "kept" {
				t.Fatalf("ciphertext from before the disk filled: %v", err)
			}
		})
	}
}

// mountTmpfs mounts a tmpfs of size on a new directory, unmounted when the
// test ends (after the instance on it stops); it skips where mounting is
// not permitted.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	mnt := filepath.Join(dir, "tmpfs")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (needs root): %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", mnt, err, out)
		}
	})
	return mnt
}

// fillDisk writes a file until the disk under dir is full and returns it.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	// Top off what a large write could not take.
	for _, err := f.Write(buf[:512]); err == nil; _, err = f.Write(buf[:512]) {
	}
	return path
}
