package tests

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/keyledger/keyledger/ledger/merkle"
	"github.com/keyledger/keyledger/ledger/offline"
)

// getAudit sends a signed GET to the audit API as user.
func getAudit(t *testing.T, in *instance, user, pathAndQuery string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", in.endpoint+pathAndQuery, nil)
	signRequestPath(req, user, pathAndQuery, time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func decodeHashes(t *testing.T, in []string) []tlog.Hash {
	var out []tlog.Hash
	for _, s := range in {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != 32 {
			t.Fatalf("bad hash %q", s)
		}
		var h tlog.Hash
		copy(h[:], b)
		out = append(out, h)
	}
	return out
}

func TestCheckpointsAndProofsOverHTTP(t *testing.T) {
	in := start(t)
	ctx := context.Background()
	k := in.createKey("proofs")
	for i := 0; i < 10; i++ {
		in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x")})
	}
	status, signed := getAudit(t, in, "admin", "/audit/checkpoint")
	if status != 200 {
		t.Fatalf("checkpoint: %d %s", status, signed)
	}
	cp1, err := merkle.Open(signed, in.vkey)
	if err != nil {
		t.Fatalf("checkpoint signature: %v", err)
	}
	recs := in.records()
	if cp1.Size < 11 || cp1.Origin != "keyledger/us-east-1" {
		t.Fatalf("checkpoint %+v", cp1)
	}
	// Event 3 is in the checkpointed tree.
	status, body := getAudit(t, in, "admin", "/audit/proof/inclusion?index=3&size="+strconv.FormatInt(cp1.Size, 10))
	var ip struct {
		Root  string
		Proof []string
	}
	if status != 200 || json.Unmarshal(body, &ip) != nil {
		t.Fatalf("inclusion: %d %s", status, body)
	}
	if err := tlog.CheckRecord(decodeHashes(t, ip.Proof), cp1.Size, cp1.Root, 3, tlog.RecordHash(recs[3].Raw)); err != nil {
		t.Fatalf("inclusion proof does not verify against the signed checkpoint: %v", err)
	}
	if tlog.CheckRecord(decodeHashes(t, ip.Proof), cp1.Size, cp1.Root, 3, tlog.RecordHash(recs[4].Raw)) == nil {
		t.Fatal("the proof also 'proves' another event")
	}
	// More traffic, a new checkpoint, and a consistency proof between them.
	for i := 0; i < 5; i++ {
		in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("y")})
	}
	signed2, err := in.node.Checkpointer.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cp2, _ := merkle.Open(signed2, in.vkey)
	status, body = getAudit(t, in, "admin", "/audit/proof/consistency?old="+strconv.FormatInt(cp1.Size, 10)+"&new="+strconv.FormatInt(cp2.Size, 10))
	var cpf struct{ Proof []string }
	if status != 200 || json.Unmarshal(body, &cpf) != nil {
		t.Fatalf("consistency: %d %s", status, body)
	}
	if err := tlog.CheckTree(decodeHashes(t, cpf.Proof), cp2.Size, cp2.Root, cp1.Size, cp1.Root); err != nil {
		t.Fatalf("consistency proof: %v", err)
	}
	// Stored checkpoints survive; alice may not read the audit.
	newest, stored, err := in.node.Checkpointer.Newest(ctx)
	if err != nil || stored < 2 {
		t.Fatalf("stored checkpoints: %d, %v", stored, err)
	}
	if cp, err := merkle.Open(newest, in.vkey); err != nil || cp.Size < cp2.Size {
		t.Fatalf("newest stored checkpoint %+v, %v; want at least size %d", cp, err, cp2.Size)
	}
	if status, _ := getAudit(t, in, "alice", "/audit/checkpoint"); status != 400 {
		t.Fatalf("alice read the audit: %d", status)
	}
	if status, _ := getAudit(t, in, "admin", "/audit/proof/inclusion?index=999999"); status != 400 {
		t.Fatalf("out-of-range proof: %d", status)
	}
}

// TestOfflineVerification exports a real ledger and checks it with nothing
// but the verifier key, then tampers with copies of the export.
func TestOfflineVerification(t *testing.T) {
	port := freePort(t)
	startNATS(t, t.TempDir(), port)
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	in := start(t, withNATS(url))
	ctx := context.Background()
	k := in.createKey("offline")
	for i := 0; i < 8; i++ {
		in.kms.Encrypt(ctx, &kms.EncryptInput{KeyId: &k, Plaintext: []byte("x"), EncryptionContext: map[string]string{"n": strconv.Itoa(i)}})
	}
	if _, err := in.node.Checkpointer.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pub := filepath.Join(dir, "checkpoint.pub")
	os.WriteFile(pub, []byte(in.vkey+"\n"), 0o644)
	export := filepath.Join(dir, "export")
	if code, out := cli(t, "audit", "export", "--nats-url", url, "--out", export); code != 0 {
		t.Fatalf("export: %d %s", code, out)
	}
	if code, out := cli(t, "audit", "verify", "--offline", export, "--pubkey", pub); code != 0 || !strings.Contains(out, "OK:") ||
		!strings.Contains(out, "writer signatures: ") || !strings.Contains(out, in.writer.ID()) || !strings.Contains(out, "the checkpoint names 1") {
		t.Fatalf("intact export: %d %s", code, out)
	}
	offlineWriterTampering(t, in, export, pub)
	data, _ := os.ReadFile(filepath.Join(export, "events.jsonl"))
	lines := strings.SplitAfter(strings.TrimSuffix(string(data), "\n"), "\n")
	lines[len(lines)-1] += "\n"
	if len(lines) < 10 {
		t.Fatalf("only %d events", len(lines))
	}
	tamper := map[string]func() []string{
		"changed byte": func() []string {
			l := append([]string(nil), lines...)
			for i := range l {
				if strings.Contains(l[i], `"n":"3"`) {
					l[i] = strings.Replace(l[i], `"n":"3"`, `"n":"9"`, 1)
				}
			}
			return l
		},
		"dropped event":  func() []string { l := append([]string(nil), lines...); return append(l[:3:3], l[4:]...) },
		"swapped events": func() []string { l := append([]string(nil), lines...); l[3], l[4] = l[4], l[3]; return l },
		"inserted event": func() []string { l := append([]string(nil), lines...); return append(append(l[:5:5], l[2]), l[5:]...) },
		"truncated tail": func() []string { return append([]string(nil), lines[:len(lines)-2]...) },
		"changed last one": func() []string {
			l := append([]string(nil), lines...)
			last := len(l) - 1
			l[last] = strings.Replace(l[last], `"op":"`, `"op":"X`, 1)
			return l
		},
	}
	for name, fn := range tamper {
		t.Run(name, func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "copy")
			os.MkdirAll(d, 0o755)
			cp, _ := os.ReadFile(filepath.Join(export, "checkpoint"))
			os.WriteFile(filepath.Join(d, "checkpoint"), cp, 0o644)
			tampered := strings.Join(fn(), "")
			if tampered == string(data) {
				t.Fatal("the tamper changed nothing")
			}
			os.WriteFile(filepath.Join(d, "events.jsonl"), []byte(tampered), 0o644)
			code, out := cli(t, "audit", "verify", "--offline", d, "--pubkey", pub)
			if code != 1 || !strings.Contains(out, "FAILED") {
				t.Fatalf("exit %d\n%s", code, out)
			}
		})
	}
	// A forged checkpoint fails its signature.
	d := filepath.Join(t.TempDir(), "forged")
	os.MkdirAll(d, 0o755)
	os.WriteFile(filepath.Join(d, "events.jsonl"), data, 0o644)
	cp, _ := os.ReadFile(filepath.Join(export, "checkpoint"))
	forged := bytes.Replace(cp, []byte("\n"), []byte("\n9"), 1) // size 9…
	os.WriteFile(filepath.Join(d, "checkpoint"), forged, 0o644)
	if code, out := cli(t, "audit", "verify", "--offline", d, "--pubkey", pub); code != 1 || !strings.Contains(out, "signature") {
		t.Fatalf("forged checkpoint: %d %s", code, out)
	}
	// The CloudTrail export carries every event.
	code, out := cli(t, "audit", "export", "--nats-url", url, "--format", "cloudtrail")
	var ct struct{ Records []map[string]any }
	if code != 0 || json.Unmarshal([]byte(out), &ct) != nil || len(ct.Records) != len(lines) || ct.Records[1]["eventSource"] != "kms.amazonaws.com" {
		t.Fatalf("cloudtrail export: %d records of %d (exit %d)", len(ct.Records), len(lines), code)
	}

}

// offlineWriterTampering checks that audit verify --offline refuses an
// export whose writer signatures were changed, dropped or claimed by a
// writer the ledger never registered, and a validly signed checkpoint that
// names a writer the exported ledger does not register.
func offlineWriterTampering(t *testing.T, in *instance, export, pub string) {
	t.Helper()
	files := map[string][]byte{}
	for _, f := range []string{offline.EventsFile, offline.CheckpointFile, offline.SignaturesFile} {
		b, err := os.ReadFile(filepath.Join(export, f))
		if err != nil {
			t.Fatal(err)
		}
		files[f] = b
	}
	sigLines := strings.SplitAfter(string(files[offline.SignaturesFile]), "\n")
	last := len(sigLines) - 2 // the last message's line (the final element is "")
	var ms offline.MessageSignature
	if err := json.Unmarshal([]byte(sigLines[last]), &ms); err != nil || ms.Writer != in.writer.ID() {
		t.Fatalf("signatures file: %v %+v", err, ms)
	}
	cpText, _, _ := bytes.Cut(files[offline.CheckpointFile], []byte("\n\n"))
	cp, err := merkle.ParseBody(string(cpText) + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if w := cp.Writers(); len(w) != 1 || w[in.writer.ID()] != in.writer.PublicText() {
		t.Fatalf("the checkpoint names writers %v, want this instance's", w)
	}
	line := func(m offline.MessageSignature) string { b, _ := json.Marshal(m); return string(b) + "\n" }
	withLine := func(l string) []byte {
		c := append([]string(nil), sigLines...)
		c[last] = l
		return []byte(strings.Join(c, ""))
	}
	badSig := ms
	sig, _ := base64.StdEncoding.DecodeString(ms.Signature)
	sig[0] ^= 1
	badSig.Signature = base64.StdEncoding.EncodeToString(sig)
	stranger := ms
	stranger.Writer = "0123456789abcdef0123456789abcdef"
	moved := ms // to another place: after another message of its chain (v2), or another stream sequence (v1)
	if ms.Chain != "" {
		moved.After--
	} else {
		moved.Seq++
	}
	otherKey := merkle.Checkpoint{Origin: cp.Origin, Size: cp.Size, Root: cp.Root,
		Extensions: merkle.WriterLines(map[string]string{in.writer.ID(): base64.StdEncoding.EncodeToString(make([]byte, 32))})}
	forgedNames, err := merkle.Sign(otherKey, in.signer)
	if err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]map[string][]byte{
		"changed signature":      {offline.SignaturesFile: withLine(line(badSig))},
		"unregistered writer":    {offline.SignaturesFile: withLine(line(stranger))},
		"signature moved":        {offline.SignaturesFile: withLine(line(moved))},
		"signatures missing":     {offline.SignaturesFile: nil},
		"checkpoint names other": {offline.CheckpointFile: forgedNames},
	} {
		t.Run(name, func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "copy")
			os.MkdirAll(d, 0o755)
			for f, b := range files {
				if nb, ok := change[f]; ok {
					b = nb
				}
				if b != nil {
					os.WriteFile(filepath.Join(d, f), b, 0o644)
				}
			}
			code, out := cli(t, "audit", "verify", "--offline", d, "--pubkey", pub)
			if code != 1 || !strings.Contains(out, "FAILED") || !strings.Contains(out, "writer") {
				t.Fatalf("exit %d\n%s", code, out)
			}
		})
	}
}
