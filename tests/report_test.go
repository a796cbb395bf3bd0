package tests

import (
	"context"
	"encoding/json"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/keyledger/keyledger/projections/compliance"
)

// TestComplianceReport drives known traffic over 400 days of injected time
// and checks every finding of the report, in JSON, CSV and HTML (rendered
// in headless Chromium with its charts drawn).
func TestComplianceReport(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	rotating := in.createKey("rotating")
	in.kms.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: &rotating})
	stale := in.createKey("no rotation")
	doomed := in.createKey("doomed")
	public := in.createKey("public")
	putPolicy(t, in, public, `{"Statement":[`+adminStatement+`,{"Sid":"Everyone","Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*"}]}`)
	for i := 0; i < 20; i++ {
		in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &rotating, Plaintext: []byte("x")})
	}
	// Denials: one a day, then a burst.
	alice := in.as("alice")
	for day := 0; day < 3; day++ {
		n := 1
		if day == 2 {
			n = 15
		}
		for i := 0; i < n; i++ {
			alice.Encrypt(ctx, &kms.EncryptInput{KeyId: &rotating, Plaintext: []byte("x")})
		}
		in.clock.Advance(24 * time.Hour)
	}
	in.clock.Advance(400 * 24 * time.Hour)
	if err := in.node.Service.RunDue(ctx); err != nil { // the yearly rotation falls due
		t.Fatal(err)
	}
	in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &rotating, Plaintext: []byte("still used")})
	in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &public, Plaintext: []byte("used")})
	in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &doomed, Plaintext: []byte("used")})
	if _, err := in.node.Checkpointer.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	in.kms.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: &doomed, PendingWindowInDays: aws.Int32(30)})
	if _, err := in.node.Checkpointer.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}

	status, body := getAudit(t, in, "admin", "/reports/compliance?format=json")
	var rep compliance.Report
	if status != 200 || json.Unmarshal(body, &rep) != nil {
		t.Fatalf("report: %d %s", status, body)
	}
	checks := map[string]compliance.Check{}
	for _, c := range rep.Checks {
		checks[c.ID] = c
		if c.Source == "" {
			t.Fatalf("check %s names no source", c.ID)
		}
	}
	has := func(id, resourcePart string) bool {
		for _, f := range checks[id].Findings {
			if strings.Contains(f.Resource, resourcePart) {
				return true
			}
		}
		return false
	}
	want := []struct {
		id, status, resource string
		present              bool
	}{
		{"rotation", "FAIL", stale, true}, {"rotation", "FAIL", rotating, false},
		{"cryptoperiod-age", "FAIL", stale, true}, {"cryptoperiod-age", "FAIL", rotating, false},
		{"cryptoperiod-usage", "PASS", "", false},
		{"pending-deletion", "WARN", doomed, true},
		{"public-key-policy", "FAIL", public, true}, {"public-key-policy", "FAIL", rotating, false},
		{"decrypt-on-all-keys", "FAIL", "user/admin", true}, {"decrypt-on-all-keys", "FAIL", "user/bob", false},
		{"unused-keys", "FAIL", stale, true}, {"unused-keys", "FAIL", rotating, false},
		{"denied-spikes", "FAIL", in.clock.Now().Add(-401 * 24 * time.Hour).UTC().Format("2006-01-02"), true},
		{"audit-integrity", "PASS", "", false},
		{"retention", "PASS", "", false},
	}
	for _, w := range want {
		c := checks[w.id]
		if c.Status != w.status || (w.resource != "" && has(w.id, w.resource) != w.present) {
			t.Errorf("check %s: status %s, findings %+v; want %s with %q present=%v", w.id, c.Status, c.Findings, w.status, w.resource, w.present)
		}
	}
	// A live report checks the newest checkpoint only (one is stored a
	// second under load); it says how many there are.
	if !strings.Contains(checks["audit-integrity"].Summary, "the newest of 2 signed checkpoints verifies") {
		t.Errorf("integrity summary: %s", checks["audit-integrity"].Summary)
	}
	if rep.KeysByState["Enabled"] != 3 || rep.KeysByState["PendingDeletion"] != 1 || len(rep.Usage) == 0 || rep.Usage[0].Key != rotating {
		t.Errorf("chart data: states %v, usage %+v", rep.KeysByState, rep.Usage)
	}

	status, csvBody := getAudit(t, in, "admin", "/reports/compliance?format=csv")
	if status != 200 || !strings.HasPrefix(string(csvBody), "check,status,source,title,resource,detail") || !strings.Contains(string(csvBody), "AWS Security Hub KMS.4") {
		t.Fatalf("csv: %d %.300s", status, csvBody)
	}
	if status, _ := getAudit(t, in, "alice", "/reports/compliance"); status != 400 {
		t.Fatalf("alice read the report: %d", status)
	}

	status, html := getAudit(t, in, "admin", "/reports/compliance?format=html")
	if status != 200 || !strings.Contains(string(html), `<polyline class="series"`) || !strings.Contains(string(html), `<rect class="bar"`) {
		t.Fatalf("html: %d", status)
	}
	renderInChromium(t, html)
}

// renderInChromium takes a screenshot of the page in headless Chromium and
// checks that the charts' colours are on it.
func renderInChromium(t *testing.T, html []byte) {
	browser, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed (.ci/run installs Debian's chromium)")
		}
		t.Skip("chromium is not installed; skipping the rendering check")
	}
	dir := t.ArtifactDir()
	page := filepath.Join(dir, "compliance.html")
	shot := filepath.Join(dir, "compliance.png")
	if err := os.WriteFile(page, html, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--window-size=1200,2600", "--screenshot="+shot, "file://"+page)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// Count pixels of the bar colour (#1f77b4) and the rotation bars (#ff7f0e).
	blue, orange := 0, 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			r, g, bl = r>>8, g>>8, bl>>8
			if near(r, 0x1f) && near(g, 0x77) && near(bl, 0xb4) {
				blue++
			}
			if near(r, 0xff) && near(g, 0x7f) && near(bl, 0x0e) {
				orange++
			}
		}
	}
	if blue < 200 || orange < 50 {
		t.Fatalf("charts not drawn: %d blue and %d orange pixels (screenshot %s)", blue, orange, shot)
	}
	t.Logf("screenshot %s: %d blue, %d orange chart pixels", shot, blue, orange)
}

func near(a, b uint32) bool { return a+12 >= b && a <= b+12 }

// TestReportCLIFromDeployment asks a running server for its report with
// `keyledger report compliance --url`: the live aggregates over signed
// HTTP, no data directory; a principal without keyledger:ReadReports is
// refused.
func TestReportCLIFromDeployment(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	k := in.createKey("reported")
	for i := 0; i < 3; i++ {
		if _, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	report := func(who string, args ...string) (int, []byte, string) {
		c := testCredentials[who]
		cmd := exec.Command(binary, append([]string{"report", "compliance", "--url", in.endpoint, "--region", testRegion}, args...)...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+c[0], "AWS_SECRET_ACCESS_KEY="+c[1])
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), out, stderr.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, out, stderr.String()
	}
	code, out, errOut := report("admin")
	var rep compliance.Report
	if code != 0 || json.Unmarshal(out, &rep) != nil {
		t.Fatalf("report --url: exit %d: %s %s", code, out, errOut)
	}
	usage := 0
	for _, u := range rep.Usage {
		if u.Key == k {
			for _, n := range u.Counts {
				usage += n
			}
		}
	}
	if usage < 3 {
		t.Fatalf("report --url does not show the key's 3 Encrypts: %+v", rep.Usage)
	}
	if code, _, errOut := report("alice"); code != 1 || !strings.Contains(errOut, "AccessDenied") {
		t.Fatalf("alice: exit %d: %s", code, errOut)
	}
	if code, out, _ := report("admin", "--format", "csv"); code != 0 || !strings.HasPrefix(string(out), "check,status,source") {
		t.Fatalf("csv: exit %d: %.200s", code, out)
	}
}
