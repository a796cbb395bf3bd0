package tests

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"golang.org/x/mod/sumdb/note"

	"github.com/keyledger/keyledger/ledger/merkle"
)

// witness runs `keyledger audit witness --once` against endpoint as admin.
func witness(t *testing.T, endpoint, vkeyFile, state string) (int, string) {
	t.Helper()
	c := testCredentials["admin"]
	cmd := exec.Command(binary, "audit", "witness", "--once", "--url", endpoint, "--pubkey", vkeyFile, "--state", state, "--region", testRegion)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+c[0], "AWS_SECRET_ACCESS_KEY="+c[1])
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// TestWitnessCatchesRollback restores a deployment from an older copy of
// its data directory, as a whole-disk rollback would: everything inside is
// consistent, so only a witness that remembers a newer signed checkpoint
// can notice.
func TestWitnessCatchesRollback(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	vkeyFile := filepath.Join(t.TempDir(), "checkpoint.pub")
	if err := os.WriteFile(vkeyFile, []byte(in.vkey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "witness.state")
	k := in.createKey("witnessed")
	encrypt := func(n int) {
		for i := 0; i < n; i++ {
			if _, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x")}); err != nil {
				t.Fatal(err)
			}
		}
	}
	encrypt(5)
	if code, out := witness(t, in.endpoint, vkeyFile, state); code != 0 {
		t.Fatalf("first look: exit %d: %s", code, out)
	}

	// The image an attacker (or a careless restore) will roll back to.
	in.down()
	image := filepath.Join(t.TempDir(), "image")
	if err := os.CopyFS(image, os.DirFS(filepath.Join(in.dir, "jetstream"))); err != nil {
		t.Fatal(err)
	}
	in.up()
	encrypt(20)
	code, out := witness(t, in.endpoint, vkeyFile, state)
	if code != 0 || !strings.HasPrefix(out, "OK:") {
		t.Fatalf("after growth: exit %d: %s", code, out)
	}

	in.down()
	if err := os.RemoveAll(filepath.Join(in.dir, "jetstream")); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(in.dir, "jetstream"), os.DirFS(image)); err != nil {
		t.Fatal(err)
	}
	in.up()
	code, out = witness(t, in.endpoint, vkeyFile, state)
	if code != 1 || !strings.Contains(out, "ALERT") || !strings.Contains(out, "rolled back") {
		t.Fatalf("after rollback: exit %d: %s; want exit 1 and a rollback alert", code, out)
	}

	// Growing the rolled-back ledger past what the witness saw makes a fork:
	// the old tree is not a prefix of the new one.
	encrypt(30)
	code, out = witness(t, in.endpoint, vkeyFile, state)
	if code != 1 || !strings.Contains(out, "forked") {
		t.Fatalf("after rollback and growth: exit %d: %s; want exit 1 and a fork alert", code, out)
	}
}

// TestWitnessCatchesForgedCheckpoint serves a checkpoint signed by another
// key at the witnessed address.
func TestWitnessCatchesForgedCheckpoint(t *testing.T) {
	in := start(t)
	vkeyFile := filepath.Join(t.TempDir(), "checkpoint.pub")
	if err := os.WriteFile(vkeyFile, []byte(in.vkey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "witness.state")
	if code, out := witness(t, in.endpoint, vkeyFile, state); code != 0 {
		t.Fatalf("first look: exit %d: %s", code, out)
	}
	before, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}

	skey, _, err := note.GenerateKey(rand.Reader, "keyledger-test") // same name, other key
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := merkle.Sign(merkle.Checkpoint{Origin: "keyledger-test", Size: 1 << 20}, signer)
	if err != nil {
		t.Fatal(err)
	}
	impostor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(forged) }))
	defer impostor.Close()
	code, out := witness(t, impostor.URL, vkeyFile, state)
	if code != 1 || !strings.Contains(out, "signature") {
		t.Fatalf("forged checkpoint: exit %d: %s; want exit 1 and a signature alert", code, out)
	}
	after, _ := os.ReadFile(state)
	if string(after) != string(before) {
		t.Fatal("the witness remembered a forged checkpoint")
	}
}
