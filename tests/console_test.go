package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/keyledger/keyledger/gateway/auditapi"
	"github.com/keyledger/keyledger/gateway/throttle"
)

// TestConsoleHeaders checks what the console's files are served with: a
// strict CSP (no inline script), no framing, no referrer; and that the
// API stays closed to other origins (no CORS).
func TestConsoleHeaders(t *testing.T) {
	in := start(t)
	for _, path := range []string{"/console/", "/console/js/app.js", "/console/console.css", "/console/nope"} {
		resp, err := http.Get(in.endpoint + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := 200
		if path == "/console/nope" {
			want = 404
		}
		if resp.StatusCode != want {
			t.Fatalf("%s: %d, want %d", path, resp.StatusCode, want)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") ||
			!strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "connect-src 'self'") {
			t.Fatalf("%s: CSP %q", path, csp)
		}
		if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("Referrer-Policy") != "no-referrer" ||
			resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("%s: headers %v", path, resp.Header)
		}
	}
	resp, err := http.Get(in.endpoint + "/console/js/app.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Fatalf("app.js served as %q", ct)
	}
	// A preflight from another origin is not allowed: no Access-Control-*
	// header on the API, for OPTIONS, GET or POST.
	for _, method := range []string{"OPTIONS", "GET", "POST"} {
		path := "/"
		if method == "GET" {
			path = "/audit/checkpoint"
		}
		req, _ := http.NewRequest(method, in.endpoint+path, nil)
		req.Header.Set("Origin", "https://evil.example")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization,x-amz-target")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for k := range resp.Header {
			if strings.HasPrefix(strings.ToLower(k), "access-control-") {
				t.Fatalf("%s %s from another origin answered %s: %s", method, path, k, resp.Header.Get(k))
			}
		}
	}
}

// TestConsole drives the console in headless Chromium as a person would:
// sign in, create a key, disable and enable it, watch an SDK Encrypt arrive
// live (and pause/resume without losing one), verify its inclusion proof
// in the page and see a tampered proof and checkpoint fail, edit a policy
// and see AWS's validation error, time-travel to before a policy change,
// see another user's AccessDenied; on a desktop and a phone-sized
// viewport, with labelled controls in the accessibility tree. The secret
// never reaches the DOM, a URL, local storage, a cookie or the server log.
func TestConsole(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	b := newBrowser(t)
	admin := testCredentials["admin"]

	b.run("open", chromedp.Navigate(in.endpoint+"/console/"))
	b.wait("sign-in form", `!document.getElementById("signin").hidden`)
	b.shot("01-signin")
	b.run("sign in",
		chromedp.SendKeys(chromedp.CSS("#si-akid"), admin[0]),
		chromedp.SendKeys(chromedp.CSS("#si-secret"), admin[1]),
		chromedp.SetValue(chromedp.CSS("#si-vkey"), in.vkey),
		chromedp.Click(chromedp.CSS(`#signin-form button[type="submit"]`)))
	b.wait("key list", `!!document.querySelector("#keys-count")`)

	// Create a key (with an alias and a tag) through the form.
	b.run("open create form", chromedp.Click(chromedp.CSS("#create-key-open")))
	b.run("fill create form",
		chromedp.SendKeys(chromedp.CSS("#ck-desc"), "made in the console"),
		chromedp.SendKeys(chromedp.CSS("#ck-alias"), "console-demo"),
		chromedp.SendKeys(chromedp.CSS("#ck-tags"), "team=payments"),
		chromedp.Click(chromedp.CSS("#ck-submit")))
	b.wait("key page", `location.hash.startsWith("#/key/") && !!document.querySelector("#key-disable")`)
	hash := eval[string](b, `location.hash`)
	keyID := strings.TrimPrefix(hash, "#/key/")
	d, err := in.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/console-demo")})
	if err != nil || *d.KeyMetadata.KeyId != keyID || *d.KeyMetadata.Description != "made in the console" {
		t.Fatalf("the console's CreateKey: %v %+v (page key %s)", err, d, keyID)
	}
	b.wait("usage chart", `!!document.querySelector("#usage-card svg")`)
	b.shot("02-key")

	// Disable, then enable: each is the SDK-visible state.
	b.run("disable", chromedp.Click(chromedp.CSS("#key-disable")))
	b.wait("disabled", `!!document.querySelector("#key-enable")`)
	if d, _ := in.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &keyID}); d.KeyMetadata.KeyState != "Disabled" {
		t.Fatalf("after Disable in the console: %s", d.KeyMetadata.KeyState)
	}
	b.run("enable", chromedp.Click(chromedp.CSS("#key-enable")))
	b.wait("enabled", `!!document.querySelector("#key-disable")`)

	// Description, rotation period, an alias and a tag, each through its form.
	b.run("description", chromedp.SetValue(chromedp.CSS("#key-desc"), "renamed in the console"),
		chromedp.Click(chromedp.CSS(`#key-desc ~ button, form.toolbar button[type="submit"]`)))
	b.wait("renamed", `document.querySelector("h1") && document.body.textContent.includes("renamed in the console") && !!document.querySelector("#rot-on")`)
	b.run("rotation", chromedp.Click(chromedp.CSS("#rot-on")), chromedp.SetValue(chromedp.CSS("#rot-period"), "180"),
		chromedp.Click(chromedp.CSS(`#rot-period`)), chromedp.KeyEvent("\r"))
	b.wait("rotation saved", `document.querySelector("#rot-on") && document.querySelector("#rot-on").checked && document.querySelector("#rot-period").value === "180"`)
	if r, err := in.kms.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: &keyID}); err != nil || !r.KeyRotationEnabled || *r.RotationPeriodInDays != 180 {
		t.Fatalf("rotation after the console: %v %+v", err, r)
	}
	b.run("alias", chromedp.SendKeys(chromedp.CSS("#alias-new"), "console-second"), chromedp.KeyEvent("\r"))
	b.wait("alias added", `document.body.textContent.includes("alias/console-second")`)
	b.run("tag", chromedp.SendKeys(chromedp.CSS("#tag-new"), "env=test"), chromedp.KeyEvent("\r"))
	b.wait("tag added", `document.body.textContent.includes("env = test")`)
	d, err = in.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/console-second")})
	if err != nil || *d.KeyMetadata.KeyId != keyID || *d.KeyMetadata.Description != "renamed in the console" {
		t.Fatalf("after the console's alias and description: %v %+v", err, d)
	}
	if tags, err := in.kms.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: &keyID}); err != nil || len(tags.Tags) != 2 {
		t.Fatalf("tags after the console's TagResource: %v %+v", err, tags)
	}

	// Rotate on demand; schedule deletion, then cancel it (the key is
	// then Disabled, as in AWS); grants: create one, then revoke it.
	b.run("rotate", chromedp.Click(chromedp.CSS("#key-rotate")))
	b.wait("rotated", `[...document.querySelectorAll("#toast .msg")].some(m => m.textContent === "Rotated")`)
	if r, err := in.kms.ListKeyRotations(ctx, &kms.ListKeyRotationsInput{KeyId: &keyID}); err != nil || len(r.Rotations) != 1 {
		t.Fatalf("rotations after the console's RotateKeyOnDemand: %v %v", err, r)
	}
	b.run("schedule deletion", chromedp.SetValue(chromedp.CSS("#key-window"), "7"), chromedp.Click(chromedp.CSS("#key-schedule-deletion")))
	b.wait("pending deletion", `!!document.querySelector("#key-cancel-deletion")`)
	if d, _ := in.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &keyID}); d.KeyMetadata.KeyState != "PendingDeletion" || *d.KeyMetadata.PendingDeletionWindowInDays != 7 {
		t.Fatalf("after ScheduleKeyDeletion in the console: %+v", d.KeyMetadata)
	}
	b.run("cancel deletion", chromedp.Click(chromedp.CSS("#key-cancel-deletion")))
	b.wait("disabled", `!!document.querySelector("#key-enable")`)
	b.run("enable", chromedp.Click(chromedp.CSS("#key-enable")))
	b.wait("enabled", `!!document.querySelector("#key-disable")`)
	b.run("grants", chromedp.Navigate(in.endpoint+"/console/#/key/"+keyID+"/grants"))
	b.wait("grants", `document.querySelector("#grant-grantee") && document.body.textContent.includes("No grants.")`)
	b.run("create grant", chromedp.SendKeys(chromedp.CSS("#grant-grantee"), "arn:aws:iam::111122223333:user/bob"),
		chromedp.Click(chromedp.CSS(`form[aria-label="Create grant"] button[type="submit"]`)))
	b.wait("grant listed", `document.body.textContent.includes("arn:aws:iam::111122223333:user/bob")`)
	if g, err := in.kms.ListGrants(ctx, &kms.ListGrantsInput{KeyId: &keyID}); err != nil || len(g.Grants) != 1 || g.Grants[0].Operations[0] != "Decrypt" {
		t.Fatalf("grants after the console's CreateGrant: %v %+v", err, g)
	}
	b.shot("02b-grants")
	b.run("revoke", chromedp.Click(chromedp.CSS("button.danger")))
	b.wait("no grants", `document.body.textContent.includes("No grants.")`)

	// The key list shows it, filtered by tag.
	b.run("keys", chromedp.Navigate(in.endpoint+"/console/#/keys"))
	b.wait("key list", `!!document.querySelector("#keys-count")`)
	b.run("filter by tag", chromedp.SendKeys(chromedp.CSS(`input[name="tag"]`), "team=payments"),
		chromedp.Click(chromedp.CSS(`form[role="search"] button[type="submit"]`)))
	b.wait("filtered list", `document.querySelectorAll("table.keys tbody tr").length === 1 && !!document.querySelector('tr[data-key="`+keyID+`"]')`)
	b.shot("03-keys")

	// Live audit: an SDK Encrypt arrives while the page watches.
	b.run("audit", chromedp.Navigate(in.endpoint+"/console/#/audit"))
	b.wait("live", `document.getElementById("audit-status").textContent === "live"`)
	if _, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &keyID, Plaintext: []byte("watched")}); err != nil {
		t.Fatal(err)
	}
	encrypts := `[...document.querySelectorAll(".evrow")].filter(r => r.textContent.includes("Encrypt")).length`
	b.wait("live Encrypt", encrypts+` === 1`)
	// Pause, encrypt twice, resume: both arrive (Last-Event-ID).
	b.run("pause", chromedp.Click(chromedp.CSS("#audit-pause")))
	b.wait("paused", `document.getElementById("audit-status").textContent.startsWith("paused")`)
	for i := 0; i < 2; i++ {
		if _, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &keyID, Plaintext: []byte("while paused")}); err != nil {
			t.Fatal(err)
		}
	}
	if n := eval[int](b, encrypts); n != 1 {
		t.Fatalf("a paused stream showed %d Encrypts", n)
	}
	b.run("resume", chromedp.Click(chromedp.CSS("#audit-pause")))
	b.wait("the two Encrypts sent while paused", encrypts+` === 3`)
	// The refusals-only filter hides them all (none was refused).
	b.run("refusals only", chromedp.Click(chromedp.CSS("#audit-refused")))
	b.wait("filtered", encrypts+` === 0`)
	b.run("all", chromedp.Click(chromedp.CSS("#audit-refused")))
	b.wait("unfiltered", encrypts+` === 3`)

	// Open the newest Encrypt: its CloudTrail record, then its proof.
	b.run("open event", chromedp.Click(chromedp.CSS(`.evrow[role="listitem"]`)))
	b.wait("CloudTrail view", `document.querySelector(".cloudtrail") && document.querySelector(".cloudtrail").textContent.includes('"eventName": "Encrypt"')`)
	in.mustCheckpoint(t)
	b.run("verify proof", chromedp.Click(chromedp.CSS(".verify-proof")))
	b.wait("proof verdict", `!!document.querySelector(".verdict")`)
	if v := b.text(".verdict"); !strings.HasPrefix(v, "✓") {
		t.Fatalf("a genuine proof failed in the page: %s / %s", v, b.text(".steps"))
	}
	if s := b.text(".steps"); !strings.Contains(s, in.vkey) || !strings.Contains(s, "the checkpoint's root") {
		t.Fatalf("the page does not say what it checked against which key: %s", s)
	}
	b.shot("04-audit-proof")

	// A proof tampered with on the wire fails, as does a checkpoint whose
	// signature was altered.
	tamper := interceptJSON(t, b, "*audit/proof/inclusion*", func(body []byte) []byte {
		var p map[string]any
		json.Unmarshal(body, &p)
		proof := p["proof"].([]any)
		h, _ := base64.StdEncoding.DecodeString(proof[0].(string))
		h[0] ^= 1
		proof[0] = base64.StdEncoding.EncodeToString(h)
		out, _ := json.Marshal(p)
		return out
	})
	b.run("verify tampered proof", chromedp.Click(chromedp.CSS(".verify-proof")))
	b.wait("proof verdict", `!!document.querySelector(".verdict")`)
	if v, s := b.text(".verdict"), b.text(".steps"); !strings.HasPrefix(v, "✗") || !strings.Contains(s, "NOT the checkpoint's root") {
		t.Fatalf("a tampered proof passed in the page: %s / %s", v, s)
	}
	b.shot("05-tampered-proof")
	tamper()
	tamper = interceptJSON(t, b, "*audit/checkpoint*", func(body []byte) []byte {
		lines := strings.Split(string(body), "\n") // the same signature over another root
		root, _ := base64.StdEncoding.DecodeString(lines[2])
		root[0] ^= 1
		lines[2] = base64.StdEncoding.EncodeToString(root)
		return []byte(strings.Join(lines, "\n"))
	})
	b.run("verify with altered checkpoint", chromedp.Click(chromedp.CSS(".verify-proof")))
	b.wait("proof verdict", `!!document.querySelector(".verdict")`)
	tamper()
	if v, s := b.text(".verdict"), b.text(".steps"); !strings.HasPrefix(v, "✗") || !strings.Contains(s, "INVALID") && !strings.Contains(s, "malformed") {
		t.Fatalf("an altered checkpoint passed in the page: %s / %s", v, s)
	}

	// The policy editor shows AWS's validation error.
	b.run("policy", chromedp.Navigate(in.endpoint+"/console/#/key/"+keyID+"/policy"))
	b.wait("policy text", `document.getElementById("policy-text") && document.getElementById("policy-text").value.includes("Statement")`)
	b.run("bad policy", chromedp.SetValue(chromedp.CSS("#policy-text"), `{"Version":"2012-10-17","Statement":[`+adminStatement+`,{"Effect":"Perhaps","Principal":"*","Action":"kms:Decrypt","Resource":"*"}]}`),
		chromedp.Click(chromedp.CSS("#policy-save")))
	b.wait("validation error", `!!document.querySelector("#policy-result .error")`)
	if e := b.text("#policy-result .error"); !strings.HasPrefix(e, "MalformedPolicyDocumentException: ") {
		t.Fatalf("policy error shown: %q", e)
	}
	b.shot("06-policy-error")
	// A valid change, an hour later (service clock): time travel to before it.
	in.clock.Advance(time.Hour)
	b.run("good policy", chromedp.SetValue(chromedp.CSS("#policy-text"), `{"Version":"2012-10-17","Statement":[`+adminStatement+`,{"Sid":"AddedInConsole","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:Decrypt","Resource":"*"}]}`),
		chromedp.Click(chromedp.CSS("#policy-save")))
	b.wait("saved", `document.querySelector("#policy-result .ok") !== null`)
	p, err := in.kms.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: &keyID})
	if err != nil || !strings.Contains(*p.Policy, "AddedInConsole") {
		t.Fatalf("policy after the console saved it: %v", err)
	}

	// The timeline has every event of the key, refusals included; from the
	// PutKeyPolicy, travel to just before it.
	b.run("timeline", chromedp.Navigate(in.endpoint+"/console/#/key/"+keyID+"/timeline"))
	b.wait("history read", `(document.getElementById("timeline-status") || {dataset: {}}).dataset.live === "1"`)
	// The list draws only the rows in view: hide the reads, read the
	// newest, then scroll to the oldest.
	b.run("hide reads", chromedp.Click(chromedp.CSS("#timeline-changes")))
	rowOps := `[...document.querySelectorAll(".evrow[role=listitem] span:nth-child(3)")].map(s => s.textContent)`
	ops := eval[[]string](b, rowOps)
	eval[chromedp.Void](b, `(() => { const s = document.querySelector(".scroller"); s.scrollTop = s.scrollHeight; })()`)
	b.wait("the oldest rows", `[...document.querySelectorAll(".evrow[role=listitem]")].some(r => r.dataset.index === "0" || r.textContent.includes("CreateKey"))`)
	ops = append(ops, eval[[]string](b, rowOps)...)
	joined := strings.Join(ops, ",")
	for _, op := range []string{"CreateKey", "CreateAlias", "TagResource", "DisableKey", "EnableKey", "UpdateKeyDescription", "EnableKeyRotation",
		"RotateKeyOnDemand", "ScheduleKeyDeletion", "CancelKeyDeletion", "CreateGrant", "RevokeGrant", "Encrypt", "PutKeyPolicy"} {
		if !strings.Contains(joined, op) {
			t.Fatalf("timeline lacks %s: %v", op, ops)
		}
	}
	if !strings.Contains(b.text("#timeline-status"), "(1 refused)") {
		t.Fatalf("the refused PutKeyPolicy is not counted: %s", b.text("#timeline-status"))
	}
	eval[chromedp.Void](b, `document.querySelector(".scroller").scrollTop = 0`)
	putRow := `[...document.querySelectorAll(".evrow[role=listitem]")].find(r => r.textContent.includes("PutKeyPolicy") && r.textContent.includes("allowed"))`
	b.wait("the PutKeyPolicy row", putRow)
	eval[chromedp.Void](b, `[...document.querySelectorAll(".evrow[role=listitem]")].find(r => r.textContent.includes("PutKeyPolicy") && r.textContent.includes("allowed")).click()`)
	b.wait("event detail", `!!document.querySelector("#travel-before")`)
	b.shot("07-timeline")
	b.run("travel", chromedp.Click(chromedp.CSS("#travel-before")))
	b.wait("state then", `!!document.querySelector("#tt-policy")`)
	if pol := b.text("#tt-policy"); strings.Contains(pol, "AddedInConsole") || !strings.Contains(pol, "Statement") {
		t.Fatalf("the policy before the change shows the change: %s", pol)
	}
	if st := b.text("#tt-state"); st != "Enabled" {
		t.Fatalf("state then: %q", st)
	}
	b.shot("08-time-travel")

	// Integrity and compliance.
	b.run("integrity", chromedp.Navigate(in.endpoint+"/console/#/integrity"))
	b.wait("checkpoint verified", `document.querySelector("#checkpoint-result .ok") !== null`)
	if size := b.text("#cp-size"); size == "" || size == "0" {
		t.Fatalf("checkpoint size shown: %q", size)
	}
	b.shot("09-integrity")
	// Another log's verifier key (same name, other key) does not verify it.
	_, otherKey, err := note.GenerateKey(rand.Reader, "keyledger-test")
	if err != nil {
		t.Fatal(err)
	}
	b.run("other verifier key", chromedp.SetValue(chromedp.CSS("#vkey"), otherKey), chromedp.Click(chromedp.CSS(`#vkey ~ button, form.toolbar button[type="submit"]`)))
	b.wait("refused", `document.querySelector("#checkpoint-result .bad") !== null`)
	if r := b.text("#checkpoint-result .bad"); !strings.Contains(r, "no signature by the verifier key") {
		t.Fatalf("another verifier key: %s", r)
	}
	b.run("our verifier key", chromedp.SetValue(chromedp.CSS("#vkey"), in.vkey), chromedp.Click(chromedp.CSS(`form.toolbar button[type="submit"]`)))
	b.wait("verified again", `document.querySelector("#checkpoint-result .ok") !== null`)
	b.run("compliance", chromedp.Navigate(in.endpoint+"/console/#/compliance"))
	b.wait("checks", `!!document.querySelector("#checks tbody tr") && document.querySelectorAll("figure.chart svg").length === 4`)
	b.shot("10-compliance")

	// Accessibility: every control has a name; keyboard reaches the nav.
	checkAccessibility(t, b)

	// A phone-sized viewport: no horizontal scrolling.
	b.run("phone", cdpCall(emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{Width: 390, Height: 844, DeviceScaleFactor: 2, Mobile: true}),
		chromedp.Navigate(in.endpoint+"/console/#/keys"))
	b.wait("key list", `!!document.querySelector("#keys-count")`)
	overflow := eval[bool](b, `document.documentElement.scrollWidth > window.innerWidth + 1`)
	b.shot("11-phone-keys")
	if overflow {
		t.Fatal("the key list scrolls sideways on a phone")
	}
	b.run("desktop", cdpCall(emulation.ClearDeviceMetricsOverride, cdp.Empty{}))

	// The secret is nowhere but the session storage.
	secretNowhere(t, b, in, admin[1])

	// Another user: the console shows AWS's AccessDenied.
	b.run("sign out", chromedp.Click(chromedp.CSS("#signout")))
	b.wait("sign-in form", `!document.getElementById("signin").hidden`)
	alice := testCredentials["alice"]
	b.run("sign in as alice",
		chromedp.SendKeys(chromedp.CSS("#si-akid"), alice[0]),
		chromedp.SendKeys(chromedp.CSS("#si-secret"), alice[1]),
		chromedp.Click(chromedp.CSS(`#signin-form button[type="submit"]`)))
	// Without keyledger:ReadAudit the list falls back to ListKeys, which
	// alice may not call either: AWS's refusals, both.
	b.wait("alice's key list refused", `document.querySelectorAll("#view .error").length === 2`)
	if e := b.text("#view .error"); !strings.HasPrefix(e, "AccessDeniedException: ") {
		t.Fatalf("alice's key list: %q", e)
	}
	b.run("alice opens the key", chromedp.Navigate(in.endpoint+"/console/#/key/"+keyID))
	b.wait("refusal", `!!document.querySelector(".error")`)
	if e := b.text(".error"); !strings.HasPrefix(e, "AccessDeniedException: ") {
		t.Fatalf("alice sees %q", e)
	}
	b.shot("12-access-denied")
	if errs := b.pageErrors(); len(errs) > 0 {
		t.Fatalf("page errors: %v", errs)
	}
}

// mustCheckpoint stores a checkpoint now.
func (i *instance) mustCheckpoint(t *testing.T) {
	t.Helper()
	if _, err := i.node.Checkpointer.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// interceptJSON rewrites the responses to requests matching pattern with
// edit, as a man in the middle would; the returned func stops it.
func interceptJSON(t *testing.T, b *browser, pattern string, edit func([]byte) []byte) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(b.ctx)
	paused := make(chan *fetch.EventRequestPaused, 16)
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*fetch.EventRequestPaused); ok {
			paused <- e
		}
	}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case e := <-paused:
				body, err := chromedp.Call(b.ctx, fetch.GetResponseBody, fetch.GetResponseBodyParams{RequestID: e.RequestID})
				if err != nil {
					t.Errorf("intercepted body: %v", err)
					chromedp.Call(b.ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: e.RequestID})
					continue
				}
				chromedp.Call(b.ctx, fetch.FulfillRequest, fetch.FulfillRequestParams{RequestID: e.RequestID,
					ResponseCode: e.ResponseStatusCode, ResponseHeaders: e.ResponseHeaders, Body: edit(body.Body)})
			}
		}
	}()
	b.run("intercept "+pattern, cdpCall(fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: pattern, RequestStage: fetch.RequestStageResponse}}}))
	return func() {
		b.run("stop intercepting", cdpCall(fetch.Disable, cdp.Empty{}))
		cancel()
		<-done
	}
}

// cdpCall is an action that sends one DevTools protocol command.
func cdpCall[P, R any](cmd cdp.Command[P, R], params P) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, cmd, params)
		return err
	})
}

// checkAccessibility reads Chromium's accessibility tree: every text box,
// combo box, check box and button has an accessible name, the page has a
// main landmark and a navigation, and Tab reaches the navigation.
func checkAccessibility(t *testing.T, b *browser) {
	t.Helper()
	for _, page := range []string{"#/keys", "#/audit", "#/integrity"} {
		eval[string](b, `location.hash = "`+page+`"`)
		b.wait("page drawn", `!!document.querySelector("main h1")`)
		tree, err := chromedp.Call(b.ctx, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
		if err != nil {
			t.Fatal(err)
		}
		roles := map[string]int{}
		for _, n := range tree.Nodes {
			if n.Ignored || n.Role == nil {
				continue
			}
			role := strings.Trim(string(n.Role.Value), `"`)
			roles[role]++
			switch role {
			case "textbox", "combobox", "checkbox", "button", "searchbox", "spinbutton", "link":
				name := ""
				if n.Name != nil {
					name = strings.Trim(string(n.Name.Value), `"`)
				}
				if strings.TrimSpace(name) == "" {
					t.Errorf("%s: a %s without an accessible name", page, role)
				}
			}
		}
		if roles["main"] == 0 || roles["navigation"] == 0 || roles["heading"] == 0 {
			t.Errorf("%s: landmarks %v", page, roles)
		}
	}
	// Keyboard: Tab from the top reaches the skip link, then the nav.
	b.run("reload", chromedp.Reload())
	b.wait("page drawn", `!!document.querySelector("main h1")`)
	var seen []string
	for i := 0; i < 4; i++ {
		b.run("tab", chromedp.KeyEvent("\t"))
		seen = append(seen, eval[string](b, `document.activeElement.tagName + ":" + document.activeElement.textContent.trim()`))
	}
	if !strings.Contains(strings.Join(seen, "|"), "A:Keys") {
		t.Errorf("Tab does not reach the navigation: %v", seen)
	}
}

// secretNowhere checks the secret is in no DOM text or attribute, no input
// value, no URL the page requested, no local storage, no cookie and not
// in the server's log.
func secretNowhere(t *testing.T, b *browser, in *instance, secret string) {
	t.Helper()
	found := eval[string](b, `(() => {
	  const s = `+jsString(secret)+`;
	  if (document.documentElement.outerHTML.includes(s)) return "DOM";
	  for (const i of document.querySelectorAll("input,textarea")) if (i.value.includes(s)) return "input " + i.id;
	  if (location.href.includes(s)) return "URL";
	  for (let i = 0; i < localStorage.length; i++) if (localStorage.getItem(localStorage.key(i)).includes(s)) return "localStorage";
	  if (document.cookie.includes(s)) return "cookie";
	  return "";
	})()`)
	if found != "" {
		t.Fatalf("the secret is in the %s", found)
	}
	for _, u := range b.requested() {
		if strings.Contains(u, secret) {
			t.Fatalf("the secret is in a requested URL: %s", u)
		}
	}
	if strings.Contains(in.logs.String(), secret) {
		t.Fatal("the secret is in the server log")
	}
	// It is in the session storage (where the console keeps it for the tab).
	if !eval[bool](b, `(sessionStorage.getItem("keyledger.session")||"").includes(`+jsString(secret)+`)`) {
		t.Fatal("the session does not hold the secret: then where does the page keep it?")
	}
}

// TestComplianceReportOneDay renders the HTML report after one day of
// traffic on two aliased keys in Chromium: the usage chart shows bars with
// values (not an empty axis), axes carry units, keys are named by alias
// beside their id, and the integrity line says what was verified.
func TestComplianceReportOneDay(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	keys := map[string]string{}
	for _, name := range []string{"alias/payments", "alias/archive"} {
		k := in.createKey(name)
		if _, err := in.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(name), TargetKeyId: &k}); err != nil {
			t.Fatal(err)
		}
		keys[name] = k
	}
	for i := 0; i < 30; i++ {
		k := keys["alias/payments"]
		if i%3 == 0 {
			k = keys["alias/archive"]
		}
		if _, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		in.clock.Advance(20 * time.Minute) // within one day
	}
	in.mustCheckpoint(t)
	status, html := getAudit(t, in, "admin", "/reports/compliance?format=html")
	if status != 200 {
		t.Fatalf("report: %d %s", status, html)
	}
	b := newBrowser(t)
	page := filepath.Join(b.shots, "report-one-day.html")
	if err := os.WriteFile(page, html, 0o644); err != nil {
		t.Fatal(err)
	}
	b.run("open report", chromedp.Navigate("file://"+page))
	b.wait("charts", `document.querySelectorAll("svg").length === 3`)
	b.shot("report-one-day")
	bars := eval[[]string](b, `[...document.querySelectorAll("#usage-chart rect.bar title")].map(t => t.textContent)`)
	if len(bars) != 2 || !strings.Contains(strings.Join(bars, "|"), "alias/payments ("+keys["alias/payments"]+"): 20 operations") {
		t.Fatalf("one day's usage bars: %q", bars)
	}
	axis := b.text("#usage-chart svg")
	for _, want := range []string{"operations per day", "day (UTC)", "20"} {
		if !strings.Contains(axis, want) {
			t.Fatalf("usage chart lacks %q: %s", want, axis)
		}
	}
	if ages := b.text("#rotation-chart svg"); !strings.Contains(ages, "alias/payments") || !strings.Contains(ages, "days since the current key material") {
		t.Fatalf("rotation chart: %s", ages)
	}
	line := b.text("#integrity")
	for _, want := range []string{"hash chain walked and verified over", "signed checkpoint verifies", "covers"} {
		if !strings.Contains(line, want) {
			t.Fatalf("integrity line lacks %q: %s", want, line)
		}
	}
	if findings := b.text("table"); !strings.Contains(findings, "alias/archive") {
		t.Fatalf("findings name keys by id only: %s", findings)
	}
}

// TestConsoleAuditEndpoints checks the audit API the console reads beyond
// the existing endpoints: the filtered, paged key listing; a key's daily
// usage; one event's bytes and CloudTrail record (not another account's);
// and a page of history that ends (before=).
func TestConsoleAuditEndpoints(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	var ids []string
	for i := 0; i < 5; i++ {
		out, err := in.kms.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("listed"),
			Tags: []types.Tag{{TagKey: aws.String("team"), TagValue: aws.String([]string{"a", "b"}[i%2])}}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, *out.KeyMetadata.KeyId)
	}
	if _, err := in.kms.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/named"), TargetKeyId: &ids[1]}); err != nil {
		t.Fatal(err)
	}
	if _, err := in.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: &ids[2]}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &ids[0], Plaintext: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	list := func(user, query string) (int, auditapi.KeyList) {
		t.Helper()
		status, body := getAudit(t, in, user, "/audit/keys"+query)
		var l auditapi.KeyList
		if status == 200 {
			if err := json.Unmarshal(body, &l); err != nil {
				t.Fatal(err)
			}
		}
		return status, l
	}
	if _, l := list("admin", "?tag=team%3Da"); l.Total != 3 {
		t.Fatalf("tag team=a: %+v", l)
	}
	if _, l := list("admin", "?state=Disabled"); l.Total != 1 || l.Keys[0].KeyID != ids[2] {
		t.Fatalf("Disabled: %+v", l)
	}
	if _, l := list("admin", "?alias=named"); l.Total != 1 || l.Keys[0].KeyID != ids[1] || l.Keys[0].Aliases[0] != "alias/named" {
		t.Fatalf("alias: %+v", l)
	}
	// Pages of two, in id order, each naming the next.
	var paged []string
	marker := ""
	for pages := 0; pages < 5; pages++ {
		_, l := list("admin", "?limit=2&marker="+marker)
		for _, k := range l.Keys {
			paged = append(paged, k.KeyID)
		}
		if l.Total != 5 || l.NextMarker == "" {
			break
		}
		marker = l.NextMarker
	}
	sorted := slices.Sorted(slices.Values(ids))
	if !slices.Equal(paged, sorted) {
		t.Fatalf("pages %v, want %v", paged, sorted)
	}
	// Another account sees none of them; alice (no keyledger:ReadAudit) is refused.
	if _, l := list("erin", ""); l.Total != 0 {
		t.Fatalf("erin lists account A's keys: %+v", l)
	}
	if status, _ := list("alice", ""); status != 400 {
		t.Fatalf("alice lists keys: %d", status)
	}

	status, body := getAudit(t, in, "admin", "/audit/keys/"+ids[0]+"/usage")
	var u auditapi.KeyUsage
	if status != 200 || json.Unmarshal(body, &u) != nil || u.Days["2026-11-27"] != 3 {
		t.Fatalf("usage: %d %s", status, body)
	}
	if status, body := getAudit(t, in, "erin", "/audit/keys/"+ids[0]+"/usage"); status != 200 || strings.Contains(string(body), "2026") {
		t.Fatalf("another account's usage: %d %s", status, body)
	}

	recs := in.records()
	last := recs[len(recs)-1]
	status, body = getAudit(t, in, "admin", "/audit/events/"+strconv.FormatUint(last.Pos, 10))
	var one auditapi.OneEvent
	if status != 200 || json.Unmarshal(body, &one) != nil {
		t.Fatalf("one event: %d %s", status, body)
	}
	if raw, _ := base64.StdEncoding.DecodeString(one.Raw); !bytes.Equal(raw, last.Raw) || one.CloudTrail.EventName != "Encrypt" {
		t.Fatalf("event %d: %s", last.Pos, body)
	}
	if status, body := getAudit(t, in, "erin", "/audit/events/"+strconv.FormatUint(last.Pos, 10)); status != 400 || !strings.Contains(string(body), "NotFoundException") {
		t.Fatalf("another account's event: %d %s", status, body)
	}

	// A page of history ends at before=, with the key's events below it.
	sse := func(query, lastID string) (ids []string, ended bool) {
		req, _ := http.NewRequest("GET", in.endpoint+"/audit/events"+query, nil)
		signRequestPath(req, "admin", "/audit/events"+query, time.Now())
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		resp, err := http.DefaultClient.Do(req.WithContext(cctx))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body) // ends only if the server ends the page
		for _, line := range strings.Split(string(body), "\n") {
			if id, ok := strings.CutPrefix(line, "id: "); ok {
				ids = append(ids, id)
			}
		}
		return ids, strings.Contains(string(body), ": end")
	}
	var want []string
	for _, r := range recs {
		if r.Event.KeyID == ids[0] && r.Pos >= 3 && r.Pos < last.Pos {
			want = append(want, strconv.FormatUint(r.Pos, 10))
		}
	}
	got, ended := sse("?key="+ids[0]+"&before="+strconv.FormatUint(last.Pos, 10), "2")
	if !ended || !slices.Equal(got, want) {
		t.Fatalf("page before %d: %v ended=%v, want %v", last.Pos, got, ended, want)
	}
}

// TestConsoleServedOverTLS runs `keyledger serve --tls-self-signed` as a
// person would: the banner names the console's https URL, Chromium signs in
// there with the admin credentials the first start printed and lists keys,
// and the log written after sign-in never holds the secret.
func TestConsoleServedOverTLS(t *testing.T) {
	chromiumPath(t)
	dir := t.TempDir()
	port := freePort(t)
	cmd := exec.Command(binary, "serve", "--listen", "127.0.0.1:"+strconv.Itoa(port), "--data-dir", dir, "--tls-self-signed", "--log-level", "info")
	out := &syncBuffer{}
	cmd.Stderr, cmd.Stdout = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	url := "https://127.0.0.1:" + strconv.Itoa(port) + "/console/"
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "url="+url) {
		if time.Now().After(deadline) {
			t.Fatalf("no console URL in the banner:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var akid, secret string
	for _, line := range strings.Split(out.String(), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "export AWS_ACCESS_KEY_ID="); ok {
			akid = v
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "export AWS_SECRET_ACCESS_KEY="); ok {
			secret = v
		}
	}
	if akid == "" || secret == "" {
		t.Fatalf("no admin credentials printed:\n%s", out.String())
	}
	logged := len(out.String())
	b := newBrowser(t, chromedp.Flag("ignore-certificate-errors", true))
	b.run("open", chromedp.Navigate(url))
	b.wait("sign-in form", `!document.getElementById("signin").hidden && location.protocol === "https:"`)
	b.run("sign in", chromedp.SendKeys(chromedp.CSS("#si-akid"), akid), chromedp.SendKeys(chromedp.CSS("#si-secret"), secret),
		chromedp.Click(chromedp.CSS(`#signin-form button[type="submit"]`)))
	b.wait("key list", `!!document.querySelector("#keys-count")`)
	b.run("create", chromedp.Click(chromedp.CSS("#create-key-open")), chromedp.SendKeys(chromedp.CSS("#ck-desc"), "over TLS"),
		chromedp.Click(chromedp.CSS("#ck-submit")))
	b.wait("key page", `location.hash.startsWith("#/key/") && !!document.querySelector("#key-disable")`)
	b.shot("tls-key")
	if strings.Contains(out.String()[logged:], secret) {
		t.Fatal("the secret is in the server log after sign-in")
	}
	if errs := b.pageErrors(); len(errs) > 0 {
		t.Fatalf("page errors: %v", errs)
	}
}

// TestConsoleThrottled: the console's calls are ordinary API calls, under
// the same quotas: past the account's DescribeKey quota the key page shows
// AWS's ThrottlingException.
func TestConsoleThrottled(t *testing.T) {
	lim := throttle.New(throttle.Config{Region: testRegion, Account: func(account string) map[string]float64 {
		return map[string]float64{"DescribeKey": 0.01} // one, then none for 100 s
	}})
	in := start(t, withThrottle(lim))
	key := in.createKey("throttled")
	b := newBrowser(t)
	admin := testCredentials["admin"]
	b.run("open", chromedp.Navigate(in.endpoint+"/console/#/key/"+key))
	b.wait("sign-in form", `!document.getElementById("signin").hidden`)
	b.run("sign in", chromedp.SendKeys(chromedp.CSS("#si-akid"), admin[0]), chromedp.SendKeys(chromedp.CSS("#si-secret"), admin[1]),
		chromedp.Click(chromedp.CSS(`#signin-form button[type="submit"]`)))
	b.wait("key page", `!!document.querySelector("#key-disable")`)
	b.run("again", chromedp.Navigate(in.endpoint+"/console/#/keys"), chromedp.Navigate(in.endpoint+"/console/#/key/"+key))
	b.wait("refusal", `!!document.querySelector(".error")`)
	if e := b.text(".error"); !strings.HasPrefix(e, "ThrottlingException: ") {
		t.Fatalf("second DescribeKey: %q", e)
	}
	b.shot("throttled")
}

// TestConsoleVerifierMatchesGo checks the page's verification code
// (js/verify.js, WebCrypto) against Go's golang.org/x/mod/sumdb/note and
// tlog on the same inputs: signed notes with one or two signers, altered
// text, an unknown signer, a wrong verifier key; and RFC 6962 inclusion
// proofs of every leaf of trees of several sizes, genuine and altered.
func TestConsoleVerifierMatchesGo(t *testing.T) {
	in := start(t)
	b := newBrowser(t)
	b.run("open", chromedp.Navigate(in.endpoint+"/console/"))
	b.wait("module", `!!document.getElementById("signin")`)
	skey, vkey, _ := note.GenerateKey(rand.Reader, "keyledger-test")
	otherSkey, otherVkey, _ := note.GenerateKey(rand.Reader, "other-log")
	signer, _ := note.NewSigner(skey)
	other, _ := note.NewSigner(otherSkey)
	text := "keyledger/us-east-1\n42\n" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\nkeyledger-writer w1 AAAA\n"
	one, _ := note.Sign(&note.Note{Text: text}, signer)
	both, _ := note.Sign(&note.Note{Text: text}, other, signer)
	onlyOther, _ := note.Sign(&note.Note{Text: text}, other)
	altered := bytes.Replace(one, []byte("\n42\n"), []byte("\n43\n"), 1)
	cases := []struct {
		name, msg, vkey string
	}{
		{"signed", string(one), vkey},
		{"two signers", string(both), vkey},
		{"two signers, the other's key", string(both), otherVkey},
		{"altered text", string(altered), vkey},
		{"only another signer", string(onlyOther), vkey},
		{"a malformed verifier key", string(one), strings.Replace(vkey, "+", "+0", 1)},
	}
	for _, c := range cases {
		v, err := note.NewVerifier(c.vkey)
		goOK := false
		if err == nil {
			_, err = note.Open([]byte(c.msg), note.VerifierList(v))
			goOK = err == nil
		}
		jsOK := eval[bool](b, `import("./js/verify.js").then(m => m.openNote(`+jsString(c.msg)+`, `+jsString(c.vkey)+`)).then(r => r.ok)`, chromedp.EvalAwaitPromise)
		if jsOK != goOK {
			t.Errorf("%s: the page says %v, Go says %v (%v)", c.name, jsOK, goOK, err)
		}
	}
	if !eval[bool](b, `import("./js/verify.js").then(m => m.openNote(`+jsString(string(one))+`, `+jsString(vkey)+`)).then(r => r.ok)`, chromedp.EvalAwaitPromise) {
		t.Fatal("the page refuses a genuine note") // a test that cannot pass vacuously
	}

	// Inclusion proofs: every leaf of trees of 1..33 and 1000 leaves.
	var leaves [][]byte
	var hashes []tlog.Hash
	for i := 0; i < 1000; i++ {
		leaf := []byte("event " + strconv.Itoa(i))
		leaves = append(leaves, leaf)
		stored, err := tlog.StoredHashes(int64(i), leaf, hashReader(hashes))
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, stored...)
	}
	type proofCase struct {
		Index, Size int64
		Leaf        string
		Proof       []string
		Root        string
	}
	var pcs []proofCase
	for _, size := range []int64{1, 2, 3, 5, 8, 13, 21, 33, 1000} {
		root, err := tlog.TreeHash(size, hashReader(hashes))
		if err != nil {
			t.Fatal(err)
		}
		for idx := int64(0); idx < size; idx += max(1, size/40) {
			p, err := tlog.ProveRecord(size, idx, hashReader(hashes))
			if err != nil {
				t.Fatal(err)
			}
			pc := proofCase{Index: idx, Size: size, Leaf: base64.StdEncoding.EncodeToString(leaves[idx]), Root: base64.StdEncoding.EncodeToString(root[:])}
			for _, h := range p {
				pc.Proof = append(pc.Proof, base64.StdEncoding.EncodeToString(h[:]))
			}
			pcs = append(pcs, pc)
		}
	}
	js, _ := json.Marshal(pcs)
	results := eval[[]string](b, `import("./js/verify.js").then(async m => {
	  const out = [];
	  for (const c of `+string(js)+`) {
	    const leaf = await m.recordHash(m.b64decode(c.Leaf));
	    const proof = (c.Proof || []).map(m.b64decode);
	    let good, bad;
	    try { good = m.toHex(await m.rootFromInclusion(c.Index, c.Size, leaf, proof)) === m.toHex(m.b64decode(c.Root)); } catch (e) { good = false; }
	    if (proof.length) { proof[proof.length - 1][0] ^= 1; }
	    try { bad = m.toHex(await m.rootFromInclusion(c.Index, c.Size, leaf, proof)) === m.toHex(m.b64decode(c.Root)); } catch (e) { bad = false; }
	    out.push((good ? "ok" : "FAILED") + "/" + (proof.length && bad ? "ACCEPTED-TAMPERED" : "refused"));
	  }
	  return out; })`, chromedp.EvalAwaitPromise)
	if len(results) != len(pcs) {
		t.Fatalf("%d results for %d proofs", len(results), len(pcs))
	}
	for i, r := range results {
		if r != "ok/refused" {
			t.Errorf("proof of leaf %d in a tree of %d: %s", pcs[i].Index, pcs[i].Size, r)
		}
	}
	t.Logf("%d notes and %d inclusion proofs checked in the page as Go checks them", len(cases), len(pcs))
}

// hashReader reads stored tree hashes from a slice.
type hashReader []tlog.Hash

func (h hashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		out[i] = h[x]
	}
	return out, nil
}

// TestConsoleCreatesEverySpec creates a key of every key spec through the
// console's form, each with the first usage the form offers for it, and
// checks it through the SDK (SM2 shows AWS's refusal outside China).
func TestConsoleCreatesEverySpec(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	b := newBrowser(t)
	admin := testCredentials["admin"]
	b.run("open", chromedp.Navigate(in.endpoint+"/console/"))
	b.wait("sign-in form", `!document.getElementById("signin").hidden`)
	b.run("sign in", chromedp.SendKeys(chromedp.CSS("#si-akid"), admin[0]), chromedp.SendKeys(chromedp.CSS("#si-secret"), admin[1]),
		chromedp.Click(chromedp.CSS(`#signin-form button[type="submit"]`)))
	b.wait("key list", `!!document.querySelector("#keys-count")`)
	specs := eval[[]string](b, `[...document.querySelectorAll('select[name="spec"] option')].map(o => o.value).filter(v => v)`)
	if len(specs) < 17 {
		t.Fatalf("the filter offers %d specs: %v", len(specs), specs)
	}
	for _, spec := range specs {
		b.run("keys", chromedp.Navigate(in.endpoint+"/console/#/keys"))
		b.wait("key list", `!!document.querySelector("#create-key-open")`)
		b.run("create "+spec, chromedp.Click(chromedp.CSS("#create-key-open")),
			chromedp.SetValue(chromedp.CSS("#ck-spec"), spec),
			chromedp.Evaluate[chromedp.Void](`document.getElementById("ck-spec").dispatchEvent(new Event("change"))`),
			chromedp.SendKeys(chromedp.CSS("#ck-desc"), spec),
			chromedp.Click(chromedp.CSS("#ck-submit")))
		b.wait(spec+" created", `location.hash.startsWith("#/key/") || !!document.querySelector("form[aria-label='Create key'] .error")`)
		e := b.text("form[aria-label='Create key'] .error")
		if spec == "SM2" { // AWS offers SM2 in China Regions only, and says so
			if !strings.HasPrefix(e, "UnsupportedOperationException: ") {
				t.Fatalf("SM2 in %s: %q", testRegion, e)
			}
			continue
		}
		if e != "" {
			t.Fatalf("%s: %s", spec, e)
		}
		id := strings.TrimPrefix(eval[string](b, `location.hash`), "#/key/")
		d, err := in.kms.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &id})
		if err != nil || string(d.KeyMetadata.KeySpec) != spec || *d.KeyMetadata.Description != spec {
			t.Fatalf("%s: %v %+v", spec, err, d)
		}
	}
}
