package seed

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	in, err := Parse([]byte(`
account: "111122223333"
keys:
  - keyId: 49ae195b-c089-47b6-a22e-85050f7576d2
    origin: EXTERNAL
    material: |
      VRXcxHplnd6F0LaM2otL4LCJ
      wU4GLb/Q8vGwGWLAvqE=
    aliases: [alias/a, alias/b]
    policy:
      Version: "2012-10-17"
      Statement: [{Effect: Allow, Principal: {AWS: "arn:aws:iam::111122223333:root"}, Action: "kms:*", Resource: "*"}]
    rotation: {enabled: true, periodInDays: 180}
  - keyId: 01eedf47-3f68-4eb0-a2ac-5dc2253650b9
    policy: '{"Version":"2012-10-17"}'
    enabled: false
`))
	if err != nil {
		t.Fatal(err)
	}
	defer Clear(in)
	if in.Account != "111122223333" || len(in.FileHash) != 64 || len(in.Keys) != 2 {
		t.Fatalf("parsed %+v", in)
	}
	k := in.Keys[0]
	if k.Entry != "keys[0] (alias/a)" || k.Material.Len() != 32 || k.Rotation == nil || k.Rotation.PeriodDays != 180 {
		t.Fatalf("first key %+v", k)
	}
	var pol map[string]any
	if err := json.Unmarshal([]byte(*k.Policy), &pol); err != nil || pol["Version"] != "2012-10-17" {
		t.Fatalf("a YAML policy becomes JSON: %q %v", *k.Policy, err)
	}
	if k2 := in.Keys[1]; *k2.Policy != `{"Version":"2012-10-17"}` || k2.Enabled == nil || *k2.Enabled || k2.Material.Len() != 0 {
		t.Fatalf("second key %+v", k2)
	}
}

func TestParseRefuses(t *testing.T) {
	for name, doc := range map[string]string{
		"empty":          ``,
		"no keys":        `account: "111122223333"`,
		"a typo":         "keys:\n  - keyId: x\n    materiel: c2VjcmV0LXNlY3JldA==\n",
		"no key id":      "keys:\n  - description: d\n",
		"bad account":    "account: \"1\"\nkeys: [{keyId: x}]\n",
		"bad material":   "keys:\n  - keyId: x\n    material: \"c2VjcmV0!!\"\n",
		"policy list":    "keys:\n  - keyId: x\n    policy: [1, 2]\n",
		"material typed": "keys:\n  - keyId: x\n    material: {c2VjcmV0LXNlY3JldA: 1}\n",
	} {
		_, err := Parse([]byte(doc))
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), "c2VjcmV0") {
			t.Errorf("%s: the error echoes the file: %v", name, err)
		}
	}
}
