package keyservice

import "testing"

// TestARNCache: the cache answers what it would build, per region,
// account and id, and stays bounded whatever ids it is asked for.
func TestARNCache(t *testing.T) {
	var c arnCache
	for i := range 3 * maxCachedARNs {
		id := NewID()
		want := "arn:aws:kms:eu-west-1:111122223333:key/" + id
		if got := c.get("eu-west-1", "111122223333", id); got != want {
			t.Fatalf("get = %q, want %q", got, want)
		}
		if got := c.get("eu-west-1", "111122223333", id); got != want {
			t.Fatalf("cached get = %q, want %q", got, want)
		}
		if i%1000 == 0 && c.get("eu-west-1", "444455556666", id) != "arn:aws:kms:eu-west-1:444455556666:key/"+id {
			t.Fatal("another account's key got the first account's ARN")
		}
		if len(c.arns) > maxCachedARNs {
			t.Fatalf("%d ARNs cached, bound %d", len(c.arns), maxCachedARNs)
		}
	}
}
