package principals

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const sample = `{"accounts":{"111122223333":{"users":{"alice":{"accessKeys":[{"id":"AKIAALICE0000001","secret":"alice-secret-0123456789"}],
 "policies":[{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Encrypt","Resource":"*"}]}]}},
 "roles":{"app":{"accessKeys":[{"id":"AKIAAPPROLE00001","secret":"app-secret-0123456789xx"}]}}},
 "444455556666":{"users":{"carol":{"accessKeys":[{"id":"AKIACAROL0000001","secret":"carol-secret-012345678"}]}}}}}`

func TestParseAndLookup(t *testing.T) {
	d, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	p, sec, ok := d.Lookup("AKIAALICE0000001")
	if !ok || p.ARN != "arn:aws:iam::111122223333:user/alice" || p.Account != "111122223333" || len(p.Policies) != 1 || string(sec.Expose()) != "alice-secret-0123456789" {
		t.Fatalf("alice: %+v", p)
	}
	if r, _, _ := d.Lookup("AKIAAPPROLE00001"); r.ARN != "arn:aws:iam::111122223333:role/app" {
		t.Fatalf("role ARN %s", r.ARN)
	}
	if _, _, ok := d.Lookup("AKIANOBODY000000"); ok {
		t.Fatal("unknown key found")
	}
	for arn, want := range map[string]bool{"arn:aws:iam::444455556666:user/carol": true, "arn:aws:iam::444455556666:root": true,
		"111122223333": true, "arn:aws:iam::999999999999:root": false, "arn:aws:iam::111122223333:user/mallory": false} {
		if d.Exists(arn) != want {
			t.Errorf("Exists(%s) != %v", arn, want)
		}
	}
	var users []string
	for _, u := range d.Users() {
		users = append(users, u.ARN+" "+strings.Join(u.AccessKeyIDs(), ","))
	}
	if want := []string{"arn:aws:iam::111122223333:user/alice AKIAALICE0000001", "arn:aws:iam::444455556666:user/carol AKIACAROL0000001"}; !slices.Equal(users, want) {
		t.Fatalf("Users = %q, want %q", users, want)
	}
	text, hash := d.Summary()
	if strings.Contains(text, "secret-") || len(hash) != 64 || !strings.Contains(text, "AKIAALICE0000001") {
		t.Fatalf("summary: %s", text)
	}
	d2, _ := Parse([]byte(sample))
	if _, h2 := d2.Summary(); h2 != hash {
		t.Fatal("summary is not stable")
	}
	if s := fmt.Sprintf("%v %+v", d, d); strings.Contains(s, "alice-secret") {
		t.Fatalf("secret printed: %s", s)
	}
}

func TestParseRejects(t *testing.T) {
	for name, doc := range map[string]string{
		"not json":      `{`,
		"bad account":   `{"accounts":{"123":{"users":{"a":{"accessKeys":[{"id":"AKIAAAAAAAAAAAAA","secret":"0123456789abcdefg"}]}}}}}`,
		"short secret":  `{"accounts":{"111122223333":{"users":{"a":{"accessKeys":[{"id":"AKIAAAAAAAAAAAAA","secret":"short"}]}}}}}`,
		"bad policy":    `{"accounts":{"111122223333":{"users":{"a":{"accessKeys":[{"id":"AKIAAAAAAAAAAAAA","secret":"0123456789abcdefg"}],"policies":[{"Statement":[{"Effect":"Maybe"}]}]}}}}}`,
		"no keys":       `{"accounts":{"111122223333":{"users":{}}}}`,
		"duplicate key": `{"accounts":{"111122223333":{"users":{"a":{"accessKeys":[{"id":"AKIAAAAAAAAAAAAA","secret":"0123456789abcdefg"}]},"b":{"accessKeys":[{"id":"AKIAAAAAAAAAAAAA","secret":"0123456789abcdefg"}]}}}}}`,
	} {
		if _, err := Parse([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestAdmin(t *testing.T) {
	path := filepath.Join(t.TempDir(), "principals.json")
	a, err := NewAdmin("111122223333")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatal("NewAdmin wrote a file")
	}
	if p, _, ok := a.Dir.Lookup(a.AccessKeyID); !ok || p.ARN != "arn:aws:iam::111122223333:user/admin" {
		t.Fatal("the admin's directory does not know the admin")
	}
	if err := a.Save(path); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	d, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p, s, ok := d.Lookup(a.AccessKeyID)
	if !ok || string(s.Expose()) != a.SecretKey || p.ARN != "arn:aws:iam::111122223333:user/admin" {
		t.Fatal("generated admin does not load")
	}
	b, _ := NewAdmin("111122223333")
	if err := b.Save(path); err == nil {
		t.Fatal("Save overwrote an existing file")
	}
}

func TestQuotas(t *testing.T) {
	doc := `{"accounts":{"111122223333":{"users":{"u":{"accessKeys":[{"id":"AKIAQUOTA00000001","secret":"0123456789abcdef"}]}},
		"quotas":{"cryptographic-symmetric":20000,"CreateKey":10}}}}`
	d, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if q := d.Quotas("111122223333"); q["cryptographic-symmetric"] != 20000 || q["CreateKey"] != 10 {
		t.Fatalf("quotas %v", q)
	}
	if q := d.Quotas("444455556666"); q != nil {
		t.Fatalf("unconfigured account has quotas %v", q)
	}
	for _, bad := range []string{`{"cryptographic-symetric":1}`, `{"CreateKey":-1}`} {
		doc := `{"accounts":{"111122223333":{"users":{"u":{"accessKeys":[{"id":"AKIAQUOTA00000001","secret":"0123456789abcdef"}]}},"quotas":` + bad + `}}}`
		if _, err := Parse([]byte(doc)); err == nil {
			t.Errorf("quotas %s accepted", bad)
		}
	}
}
