package tests

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// TestReportsNameKeysInTheirRegion: on a deployment serving eu-west-1,
// `keys describe` and `report compliance` on its data directory, with no
// --region, name the key in eu-west-1 (they once printed us-east-1 ARNs,
// their flag's default, whatever the ledger said).
func TestReportsNameKeysInTheirRegion(t *testing.T) {
	t.Parallel() // its own server and directory
	dir := t.TempDir()
	port := freePort(t)
	endpoint := "http://127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(binary, "serve", "--data-dir", dir, "--listen", "127.0.0.1:"+strconv.Itoa(port),
		"--principals", principalsFileIn(t, dir), "--region", "eu-west-1", "--log-level", "warn")
	logs := &syncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(endpoint + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not become ready:\n%s", logs)
		}
	}
	admin := testCredentials["admin"]
	c := kms.New(kms.Options{Region: "eu-west-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider(admin[0], admin[1], ""), RetryMaxAttempts: 1})
	created, err := c.CreateKey(context.Background(), &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	key := *created.KeyMetadata.KeyId
	if arn := *created.KeyMetadata.Arn; !strings.HasPrefix(arn, "arn:aws:kms:eu-west-1:") {
		t.Fatalf("CreateKey answered ARN %s", arn)
	}
	stopServe(t, cmd, logs)

	code, out := cli(t, "keys", "describe", key, "--data-dir", dir)
	var described struct{ Key struct{ Arn string } }
	if code != 0 || json.Unmarshal([]byte(out), &described) != nil {
		t.Fatalf("keys describe: exit %d\n%s", code, out)
	}
	if want := "arn:aws:kms:eu-west-1:"; !strings.HasPrefix(described.Key.Arn, want) {
		t.Errorf("keys describe names the key %q, want an ARN in eu-west-1", described.Key.Arn)
	}
	code, out = cli(t, "report", "compliance", "--data-dir", dir)
	var rep struct{ Region string }
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil {
		t.Fatalf("report compliance: exit %d\n%s", code, out)
	}
	if rep.Region != "eu-west-1" || strings.Contains(out, "arn:aws:kms:us-east-1:") {
		t.Errorf("report compliance: region %q, us-east-1 ARNs: %v", rep.Region, strings.Contains(out, "arn:aws:kms:us-east-1:"))
	}
}
